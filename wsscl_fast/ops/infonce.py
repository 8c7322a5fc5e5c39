"""The scaled InfoNCE loss: public function, backend dispatch, and the C++ op's glue.

anchors A (N, D), positives P (N, D) (row i is A_i's positive), negatives R (M, D)::

    L = 1/N sum_i [ -s_ii/tau + log( exp(s_ii/tau) + sum_j exp(<A_i, R_j>/tau) ) ]

with s the cosine similarity (``normalize=True``) or the dot product. Backends: the Triton
kernel (``kernels/infonce.py``), the C++ op ``torch.ops.wsscl_fast.infonce_cpp``
(``csrc/infonce.cpp``, registered here with its fake and autograd formula) and the reference
(``reference.infonce_loss_ref``).
"""
from __future__ import annotations

import torch

from .. import backends, distributed
from ..precision import compute_dtype
from ..reference import infonce_loss_ref
from ..validation import check_finite, check_matrix, check_positive, check_same

# ---------------------------------------------------------------------- the C++ op: fake and autograd
def _infonce_cpp_fake(anchors, positives, negatives, temperature, normalize, need_grad, block_rows):
    grads = [x.new_empty(x.shape if need_grad else (0,)) for x in (anchors, positives, negatives)]
    return (anchors.new_empty(()), *grads)


def _infonce_cpp_setup(ctx, inputs, output):
    """The op computes the unit gradients (of the mean loss) in its forward pass: keep them."""
    ctx.save_for_backward(*output[1:])


def _infonce_cpp_backward(ctx, grad_loss, *_unused_grad_outputs):
    if torch.is_grad_enabled():
        raise RuntimeError("infonce_loss on the cpp backend is not twice differentiable "
                           "(create_graph=True); use backend='torch' for double backward")
    return (*(grad_loss * g for g in ctx.saved_tensors), None, None, None, None)


if backends.cpp_extension_loaded():
    torch.library.register_fake("wsscl_fast::infonce_cpp")(_infonce_cpp_fake)
    torch.library.register_autograd("wsscl_fast::infonce_cpp", _infonce_cpp_backward,
                                    setup_context=_infonce_cpp_setup)


def infonce_loss_cpp(anchors, positives, negatives, temperature: float, normalize: bool) -> torch.Tensor:
    """The C++ op on fp32/fp64 copies of the inputs (fp16/bf16 are computed in fp32)."""
    compute = [x.to(compute_dtype(x.dtype)).contiguous() for x in (anchors, positives, negatives)]
    need_grad = torch.is_grad_enabled() and any(x.requires_grad for x in compute)
    loss, *_ = backends.cpp_ops().infonce_cpp(*compute, temperature, normalize, need_grad, 0)  # 0: its own strips
    return loss.to(anchors.dtype)


def _load_triton():
    from ..kernels.infonce import infonce_loss_triton  # lazy: triton is optional

    return infonce_loss_triton


backends.register("infonce_loss", "triton", _load_triton)
backends.register("infonce_loss", "cpp", lambda: infonce_loss_cpp)
backends.register("infonce_loss", "torch", lambda: infonce_loss_ref)


def infonce_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = 0.5,
    normalize: bool = True,
    backend: str | None = None,
    check_inputs: bool = True,
    group=None,
) -> torch.Tensor:
    """Mean scaled InfoNCE loss (module docstring); differentiable w.r.t. all three inputs.

    ``backend`` forces ``"triton"``, ``"cpp"`` or ``"torch"``; ``check_inputs=False`` skips
    the NaN/inf scan (one device sync) in hot loops.

    ``group`` (a torch.distributed process group, e.g. ``dist.group.WORLD``): the negatives of
    all ranks are gathered, with gradients, and every local anchor is contrasted with all of
    them. The result is this rank's mean over its anchors, so that DistributedDataParallel's
    gradient averaging gives the single-process gradient of the concatenated batch (feature
    gradients on each rank are world-size times the single-process ones before that averaging).

    >>> a, p, r = torch.randn(4, 8), torch.randn(4, 8), torch.randn(16, 8)
    >>> infonce_loss(a, p, r).shape
    torch.Size([])
    """
    check_matrix("anchors", anchors)
    check_matrix("positives", positives, columns=anchors.shape[1])
    check_matrix("negatives", negatives, columns=anchors.shape[1])
    if positives.shape[0] != anchors.shape[0]:
        raise ValueError(
            f"positives must have one row per anchor: anchors has {anchors.shape[0]} rows, positives {positives.shape[0]}"
        )
    check_same("positives", positives, "anchors", anchors)
    check_same("negatives", negatives, "anchors", anchors)
    check_positive("temperature", temperature)
    if check_inputs:
        for name, x in (("anchors", anchors), ("positives", positives), ("negatives", negatives)):
            check_finite(name, x)
    if group is not None:
        negatives = distributed.gather_rows(negatives, group)
    exclude = ("triton",) if anchors.dtype == torch.float64 else ()  # the Triton kernel accumulates in fp32
    _, fn = backends.resolve("infonce_loss", anchors.device, backend, exclude)
    return fn(anchors, positives, negatives, float(temperature), bool(normalize))
