"""Python glue of the C++ CPU path (``wsscl_fast._C``): autograd for InfoNCE, list-wise optimizer steps,
saliency selection."""
from __future__ import annotations

import torch

from .backends import cpp_extension
from .precision import compute_dtype

_STRIP_ELEMENTS = 1 << 22  # one thread's (block_rows, M) logits strip: 16 MB in fp32


def strip_rows(num_anchors: int, num_negatives: int) -> int:
    """Rows per logits strip: as many as fit the strip budget, within [16, 256], and few
    enough that every thread gets a strip (the C++ op runs one chunk of strips per thread).
    Tall strips make the dR = pi^T a product efficient; the budget bounds memory for large M."""
    per_thread = -(-num_anchors // torch.get_num_threads())
    return max(16, min(256, per_thread, _STRIP_ELEMENTS // max(1, num_negatives)))


class _InfoNCECpp(torch.autograd.Function):
    """Forward computes the loss and the unit gradients in one fused pass over R (no N x M
    buffer); backward only scales them by grad_output."""

    @staticmethod
    def forward(ctx, anchors, positives, negatives, temperature, normalize):
        compute = [x.to(compute_dtype(x.dtype)) for x in (anchors, positives, negatives)]
        need_grad = any(ctx.needs_input_grad[:3])
        loss, *grads = cpp_extension().infonce_forward(*compute, temperature, normalize, need_grad,
                                                       strip_rows(anchors.shape[0], negatives.shape[0]))
        if need_grad:
            ctx.save_for_backward(*grads)
        ctx.input_dtype = anchors.dtype
        return loss.to(anchors.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            raise RuntimeError("infonce_loss on the cpp backend is not twice differentiable "
                               "(create_graph=True); use backend='torch' for double backward")
        grads = ctx.saved_tensors
        if grad_output.item() != 1.0:  # a CPU scalar: no device sync; 1 is the usual case
            grads = [g * grad_output.to(g.dtype) for g in grads]
        return (*(g.to(ctx.input_dtype) for g in grads), None, None)


def infonce_loss_cpp(anchors, positives, negatives, temperature: float, normalize: bool) -> torch.Tensor:
    return _InfoNCECpp.apply(anchors, positives, negatives, temperature, normalize)


def _contiguous_views(tensors):
    return [t if t.is_contiguous() else t.contiguous() for t in tensors]


def _write_back(originals, updated):
    for original, new in zip(originals, updated):
        if new is not original:
            original.copy_(new)


def masked_sgd_cpp(params, grads, saliencies, buffers, *, lr, momentum, weight_decay, nesterov, storage):
    """List-wise masked SGD in one C++ call; returns the momentum buffers (None without momentum)."""
    if momentum != 0:
        buffers = [torch.zeros(p.shape, dtype=compute_dtype(p.dtype)) if b is None else b
                   for p, b in zip(params, buffers)]
    work = _contiguous_views(params)
    work_buffers = _contiguous_views(buffers) if momentum != 0 else []
    cpp_extension().masked_sgd_step(work, _contiguous_views(grads), _contiguous_views(saliencies), work_buffers,
                                    lr, momentum, weight_decay, nesterov, storage)
    _write_back(params, work)
    if momentum == 0:
        return [None] * len(params)
    _write_back(buffers, work_buffers)
    return buffers


def masked_adamw_cpp(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, weight_decay,
                     storage):
    """List-wise masked AdamW in one C++ call, in place."""
    work, work_m, work_v = _contiguous_views(params), _contiguous_views(exp_avgs), _contiguous_views(exp_avg_sqs)
    cpp_extension().masked_adamw_step(work, _contiguous_views(grads), _contiguous_views(saliencies), work_m, work_v,
                                      list(steps), lr, beta1, beta2, eps, weight_decay, storage)
    for originals, updated in ((params, work), (exp_avgs, work_m), (exp_avg_sqs, work_v)):
        _write_back(originals, updated)


def saliency_from_scores_cpp(scores, keep: int, mode: str, storage: str):
    """Radix-select threshold at the ``keep``-th largest score, then one-pass emission, in C++."""
    scores = [s.detach().float().contiguous() for s in scores]
    threshold = cpp_extension().saliency_threshold(scores, keep)
    return cpp_extension().saliency_emit(scores, threshold, mode == "hard", storage)
