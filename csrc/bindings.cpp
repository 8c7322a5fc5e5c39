// pybind11 bindings of the wsscl_fast C++ CPU path (module wsscl_fast._C).
#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "wsscl_fast C++ CPU kernels: fused InfoNCE and saliency-masked optimizer steps";
  m.def("infonce_forward", &infonce_forward, "InfoNCE loss and its unit gradients, no N x M matrix",
        pybind11::arg("anchors"), pybind11::arg("positives"), pybind11::arg("negatives"),
        pybind11::arg("temperature"), pybind11::arg("normalize"), pybind11::arg("need_grad"),
        pybind11::arg("block_rows") = 32);
  m.def("masked_sgd_step", &masked_sgd_step, "saliency-masked SGD step over a list of tensors (in place)");
  m.def("masked_adamw_step", &masked_adamw_step, "saliency-masked AdamW step over a list of tensors (in place)");
  m.def("saliency_threshold", &saliency_threshold, "k-th largest score by radix select (no sort)");
  m.def("saliency_emit", &saliency_emit, "hard masks (bool or packed bits) or soft weights from scores");
}
