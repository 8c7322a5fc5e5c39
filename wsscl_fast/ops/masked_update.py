"""Saliency-masked SGD and AdamW steps over lists of tensors: public functions, backend dispatch,
and the glue of the C++ ops. ``optim.MaskedSGD`` / ``optim.MaskedAdamW`` call these.

The saliency w (bool mask or float weight in [0, 1]; stored dense, as packed bits or as uint8,
``saliency_storage.py``) scales the *update*; a coordinate with w == 0 keeps its parameter and
its optimizer state bit for bit. SGD (dampening 0), for w > 0::

    d = g + wd p;  buf = mu buf + d;  u = d + mu buf (Nesterov) or buf;  p <- p - lr w u

AdamW: p <- p (1 - lr wd w); where w > 0, m and v as Adam (per-tensor step k) and
p <- p - lr w m_hat / (sqrt(v_hat) + eps). Backends: the Triton kernels
(``kernels/masked_update.py``), the C++ ops ``torch.ops.wsscl_fast.masked_{sgd,adamw}_cpp``
(``csrc/masked_update.cpp``, registered here with their fakes) and the reference
(``reference.masked_{sgd,adamw}_step_ref``, one tensor at a time).
"""
from __future__ import annotations

import torch

from .. import backends
from ..precision import compute_dtype
from ..reference import masked_adamw_step_ref, masked_sgd_step_ref
from ..saliency_storage import dense_saliency

if backends.cpp_extension_loaded():  # in-place ops: their fakes return nothing
    torch.library.register_fake("wsscl_fast::masked_sgd_cpp")(lambda *args: None)
    torch.library.register_fake("wsscl_fast::masked_adamw_cpp")(lambda *args: None)


def _contiguous(tensors):
    return [t if t.is_contiguous() else t.contiguous() for t in tensors]


def _write_back(originals, updated):
    for original, new in zip(originals, updated):
        if new is not original:
            original.copy_(new)


def masked_sgd_cpp(params, grads, saliencies, buffers, *, lr, momentum, weight_decay, nesterov, storage):
    """The C++ op on contiguous views (copied back where a tensor was not contiguous)."""
    if momentum != 0:
        buffers = [torch.zeros(p.shape, dtype=compute_dtype(p.dtype)) if b is None else b
                   for p, b in zip(params, buffers)]
    work = _contiguous(params)
    work_buffers = _contiguous(buffers) if momentum != 0 else []
    backends.cpp_ops().masked_sgd_cpp(work, _contiguous(grads), _contiguous(saliencies), work_buffers,
                                      lr, momentum, weight_decay, nesterov, storage)
    _write_back(params, work)
    if momentum == 0:
        return [None] * len(params)
    _write_back(buffers, work_buffers)
    return buffers


def masked_adamw_cpp(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, weight_decay,
                     storage):
    """The C++ op on contiguous views (copied back where a tensor was not contiguous)."""
    work, work_m, work_v = _contiguous(params), _contiguous(exp_avgs), _contiguous(exp_avg_sqs)
    backends.cpp_ops().masked_adamw_cpp(work, _contiguous(grads), _contiguous(saliencies), work_m, work_v,
                                        list(steps), lr, beta1, beta2, eps, weight_decay, storage)
    for originals, updated in ((params, work), (exp_avgs, work_m), (exp_avg_sqs, work_v)):
        _write_back(originals, updated)


def masked_sgd_torch(params, grads, saliencies, buffers, *, lr, momentum, weight_decay, nesterov, storage):
    """The reference, one tensor at a time."""
    return [
        masked_sgd_step_ref(p, g, dense_saliency(w, storage, p.shape), b, lr=lr, momentum=momentum,
                            weight_decay=weight_decay, nesterov=nesterov)
        for p, g, w, b in zip(params, grads, saliencies, buffers)
    ]


def masked_adamw_torch(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps,
                       weight_decay, storage):
    """The reference, one tensor at a time."""
    for p, g, w, m, v, k in zip(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps):
        masked_adamw_step_ref(p, g, dense_saliency(w, storage, p.shape), m, v, k, lr=lr, beta1=beta1, beta2=beta2,
                              eps=eps, weight_decay=weight_decay)


def _sgd_triton():
    from ..kernels.masked_update import masked_sgd_triton  # lazy: triton is optional
    return masked_sgd_triton


def _adamw_triton():
    from ..kernels.masked_update import masked_adamw_triton
    return masked_adamw_triton


backends.register("masked_sgd_step", "triton", _sgd_triton)
backends.register("masked_sgd_step", "cpp", lambda: masked_sgd_cpp)
backends.register("masked_sgd_step", "torch", lambda: masked_sgd_torch)
backends.register("masked_adamw_step", "triton", _adamw_triton)
backends.register("masked_adamw_step", "cpp", lambda: masked_adamw_cpp)
backends.register("masked_adamw_step", "torch", lambda: masked_adamw_torch)


@torch.no_grad()
def masked_sgd_step(params, grads, saliencies, momentum_buffers, *, lr: float, momentum: float = 0.0,
                    weight_decay: float = 0.0, nesterov: bool = False, storage: str = "dense",
                    backend: str | None = None) -> list:
    """One masked SGD step over lists of tensors, in place; saliencies in ``storage`` form
    (``saliency_storage.store_saliency``). ``momentum_buffers[i]`` is None before the first
    step. Returns the momentum buffers (fp32 for fp16/bf16 parameters; None without momentum)."""
    _, fn = backends.resolve("masked_sgd_step", params[0].device, backend)
    return fn(list(params), list(grads), list(saliencies), list(momentum_buffers), lr=lr, momentum=momentum,
              weight_decay=weight_decay, nesterov=nesterov, storage=storage)


@torch.no_grad()
def masked_adamw_step(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps, *, lr: float, beta1: float = 0.9,
                      beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-2, storage: str = "dense",
                      backend: str | None = None) -> None:
    """One masked AdamW step over lists of tensors, in place; ``steps`` are the 1-based
    per-tensor counts, ``exp_avgs`` / ``exp_avg_sqs`` in the parameters' compute dtype."""
    _, fn = backends.resolve("masked_adamw_step", params[0].device, backend)
    fn(list(params), list(grads), list(saliencies), list(exp_avgs), list(exp_avg_sqs), list(steps), lr=lr,
       beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, storage=storage)
