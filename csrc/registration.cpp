// The C++ CPU path registered with PyTorch's dispatcher: schemas in the wsscl_fast namespace,
// CPU kernels below. Fake (meta) implementations and autograd formulas are registered from
// Python, beside each op's dispatch (wsscl_fast/ops/). Importing wsscl_fast._C runs this.
#include <Python.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "ops.h"

namespace {

constexpr int64_t kStripElements = int64_t{1} << 22;  // one thread's (block_rows, M) logits strip: 16 MB in fp32

// Rows per logits strip: as many as fit the strip budget, within [16, 256], and few enough that
// every thread gets a strip (the op runs one chunk of strips per thread). Tall strips make the
// dR = pi^T a product efficient; the budget bounds memory for large M.
int64_t strip_rows(int64_t num_anchors, int64_t num_negatives) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t per_thread = (num_anchors + threads - 1) / threads;
  const int64_t budget = kStripElements / std::max<int64_t>(1, num_negatives);
  return std::max<int64_t>(16, std::min<int64_t>({256, per_thread, budget}));
}

// Mean InfoNCE loss and its unit gradients; the gradients are empty (0,) tensors without need_grad.
// block_rows <= 0 picks strip_rows for this thread count.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> infonce_cpp(const at::Tensor& anchors,
                                                                       const at::Tensor& positives,
                                                                       const at::Tensor& negatives, double temperature,
                                                                       bool normalize, bool need_grad,
                                                                       int64_t block_rows) {
  if (block_rows <= 0) block_rows = strip_rows(anchors.size(0), negatives.size(0));
  auto out = infonce_forward(anchors, positives, negatives, temperature, normalize, need_grad, block_rows);
  for (size_t k = 1; k < out.size(); ++k) {
    if (!out[k].defined()) out[k] = at::empty({0}, anchors.options());
  }
  return {out[0], out[1], out[2], out[3]};
}

void masked_sgd_cpp(at::TensorList params, at::TensorList grads, at::TensorList saliencies,
                    at::TensorList momentum_buffers, double lr, double momentum, double weight_decay, bool nesterov,
                    c10::string_view storage) {
  masked_sgd_step(params.vec(), grads.vec(), saliencies.vec(), momentum_buffers.vec(), lr, momentum, weight_decay,
                  nesterov, std::string(storage));
}

void masked_adamw_cpp(at::TensorList params, at::TensorList grads, at::TensorList saliencies, at::TensorList exp_avgs,
                      at::TensorList exp_avg_sqs, at::IntArrayRef steps, double lr, double beta1, double beta2,
                      double eps, double weight_decay, c10::string_view storage) {
  masked_adamw_step(params.vec(), grads.vec(), saliencies.vec(), exp_avgs.vec(), exp_avg_sqs.vec(), steps.vec(), lr,
                    beta1, beta2, eps, weight_decay, std::string(storage));
}

// The k-th largest score as a 0-d float32 tensor (a tensor, so that a compiled graph keeps it on device).
at::Tensor saliency_threshold_cpp(at::TensorList scores, int64_t k) {
  return at::scalar_tensor(saliency_threshold(scores.vec(), k), at::TensorOptions().dtype(at::kFloat));
}

std::vector<at::Tensor> saliency_emit_cpp(at::TensorList scores, const at::Tensor& threshold, bool hard,
                                          c10::string_view storage) {
  TORCH_CHECK(threshold.numel() == 1, "threshold must hold one value, got ", threshold.numel());
  return saliency_emit(scores.vec(), threshold.item<double>(), hard, std::string(storage));
}

}  // namespace

TORCH_LIBRARY(wsscl_fast, m) {
  m.def("infonce_cpp(Tensor anchors, Tensor positives, Tensor negatives, float temperature, bool normalize, "
        "bool need_grad, int block_rows) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("masked_sgd_cpp(Tensor(a!)[] params, Tensor[] grads, Tensor[] saliencies, Tensor(b!)[] momentum_buffers, "
        "float lr, float momentum, float weight_decay, bool nesterov, str storage) -> ()");
  m.def("masked_adamw_cpp(Tensor(a!)[] params, Tensor[] grads, Tensor[] saliencies, Tensor(b!)[] exp_avgs, "
        "Tensor(c!)[] exp_avg_sqs, int[] steps, float lr, float beta1, float beta2, float eps, float weight_decay, "
        "str storage) -> ()");
  m.def("saliency_threshold_cpp(Tensor[] scores, int k) -> Tensor");
  m.def("saliency_emit_cpp(Tensor[] scores, Tensor threshold, bool hard, str storage) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(wsscl_fast, CPU, m) {
  m.impl("infonce_cpp", &infonce_cpp);
  m.impl("masked_sgd_cpp", &masked_sgd_cpp);
  m.impl("masked_adamw_cpp", &masked_adamw_cpp);
  m.impl("saliency_threshold_cpp", &saliency_threshold_cpp);
  m.impl("saliency_emit_cpp", &saliency_emit_cpp);
}

// An importable module with no Python functions: the ops live in torch.ops.wsscl_fast.
static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module_def); }
