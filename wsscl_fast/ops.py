"""The differentiable InfoNCE op users import: one public function that validates and dispatches."""
from __future__ import annotations

import torch
from torch import nn

from . import backends, distributed
from .reference import infonce_loss_ref
from .validation import check_finite, check_matrix, check_positive, check_same

def _infonce_triton():
    from .kernels.infonce import infonce_loss_triton  # lazy: triton is optional

    return infonce_loss_triton


def _infonce_cpp():
    from .cpp_ops import infonce_loss_cpp

    return infonce_loss_cpp


_INFONCE_IMPLEMENTATIONS = {"triton": _infonce_triton, "torch": lambda: infonce_loss_ref, "cpp": _infonce_cpp}


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
    """Mean scaled InfoNCE loss; differentiable w.r.t. all three inputs.

    anchors A (N, D), positives P (N, D) (row i is A_i's positive), negatives R (M, D)::

        L = 1/N sum_i [ -s_ii/tau + log( exp(s_ii/tau) + sum_j exp(<A_i, R_j>/tau) ) ]

    with s the cosine similarity (``normalize=True``) or the dot product.
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
    implementations = _INFONCE_IMPLEMENTATIONS
    if anchors.dtype == torch.float64:  # the Triton kernel accumulates in fp32
        implementations = {k: v for k, v in implementations.items() if k != "triton"}
    _, fn = backends.resolve("infonce_loss", anchors.device, implementations, backend)
    return fn(anchors, positives, negatives, float(temperature), bool(normalize))


class InfoNCELoss(nn.Module):
    """``nn.Module`` wrapper of :func:`infonce_loss`: ``loss = InfoNCELoss()(A, P, R)``."""

    def __init__(self, temperature: float = 0.5, normalize: bool = True, backend: str | None = None):
        super().__init__()
        check_positive("temperature", temperature)
        self.temperature, self.normalize, self.backend = temperature, normalize, backend

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return infonce_loss(anchors, positives, negatives, self.temperature, self.normalize, self.backend)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}"
