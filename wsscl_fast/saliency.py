"""Stage 0: weight saliency of the forget set (the SalUn mask, and our soft weights).

g = | sum over forget batches of grad_theta CE(f_theta(x), y) |  (eval mode, eval transform,
raw gradients accumulated, abs taken once at the end). t = global top-``ratio`` threshold.
hard: m = 1[g >= t];  soft: s = clamp(g / t, 0, 1).
Storage: ``"dense"`` (bool masks, float32 weights), ``"bits"`` (hard masks packed 1 bit per
coordinate) or ``"uint8"`` (soft weights quantised to q / 255); the masked optimizers take all
three; every public function spells the keyword ``saliency_storage=``.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from . import backends, distributed
from .data import as_loader
from .progress import step_bar
from .reference import keep_count, saliency_from_scores_ref
from .validation import check_finite, check_fraction

_STORAGES = {"hard": ("dense", "bits"), "soft": ("dense", "uint8")}


def _fused(backend: str):
    """The fused saliency implementation of ``backend`` (imported lazily: triton and the C++
    extension are optional), called with the keep count instead of the ratio."""
    if backend == "triton":
        from .kernels.saliency_select import saliency_from_scores_triton as select
    else:
        from .cpp_ops import saliency_from_scores_cpp as select

    def run(scores, ratio, mode, storage):
        return select(scores, keep_count(sum(s.numel() for s in scores), ratio), mode, storage)
    return run


_SALIENCY_IMPLEMENTATIONS = {"triton": lambda: _fused("triton"), "cpp": lambda: _fused("cpp"),
                             "torch": lambda: saliency_from_scores_ref}


def forget_gradient_scores(model: nn.Module, forget, device=None, progress: bool = False,
                           batch_size: int = 256) -> list[torch.Tensor]:
    """|sum of per-batch mean CE gradients| over ``forget``, one fp32 tensor per parameter.
    Under torchrun the sums are averaged over the ranks before the abs (``forget`` then holds
    this rank's share of each batch).

    The model's weights, gradients and train/eval mode are left as they were.
    """
    loader = as_loader(forget, batch_size, shuffle=False)
    params = list(model.parameters())
    device = device or params[0].device
    saved_grads = [p.grad for p in params]
    was_training = model.training
    sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    model.eval()
    try:
        for batch in step_bar(loader, desc="saliency", enabled=progress):
            x, y = batch[0].to(device), batch[1].to(device)
            for p in params:
                p.grad = None
            F.cross_entropy(model(x), y).backward()
            for s, p in zip(sums, params):
                if p.grad is not None:
                    s.add_(p.grad.float())
    finally:
        for p, g in zip(params, saved_grads):
            p.grad = g
        model.train(was_training)
    distributed.all_reduce_mean_(sums)  # under torchrun every rank saw its shard: same mask everywhere
    return [s.abs_() for s in sums]


def saliency_from_scores(scores: list[torch.Tensor], ratio: float = 0.5, mode: str = "soft",
                         backend: str | None = None, saliency_storage: str = "dense") -> list[torch.Tensor]:
    """Global top-``ratio`` threshold over all ``scores`` (radix select on the fused
    backends), then hard masks or soft weights in ``saliency_storage`` form."""
    check_fraction("ratio", ratio)
    if mode not in _STORAGES:
        raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
    if saliency_storage not in _STORAGES[mode]:
        raise ValueError(f"saliency_storage must be one of {_STORAGES[mode]} for mode={mode!r}, "
                         f"got {saliency_storage!r}")
    if not scores or sum(s.numel() for s in scores) == 0:
        raise ValueError("scores is empty: the model has no parameters")
    for i, s in enumerate(scores):
        check_finite(f"scores[{i}]", s)
    _, fn = backends.resolve("saliency", scores[0].device, _SALIENCY_IMPLEMENTATIONS, backend)
    return fn(scores, ratio, mode, saliency_storage)


def compute_saliency(model: nn.Module, forget, ratio: float = 0.5, mode: str = "soft", device=None,
                     progress: bool = False, backend: str | None = None,
                     saliency_storage: str = "dense") -> list[torch.Tensor]:
    """Saliency tensors aligned with ``model.parameters()``: bool (``mode="hard"``) or
    float32 in [0, 1] (``mode="soft"``); packed bits or uint8 with ``saliency_storage="bits"`` /
    ``"uint8"``. ``forget`` is a Dataset or DataLoader of (x, y).

    >>> from wsscl_fast.models import SmallCNN
    >>> from torch.utils.data import TensorDataset
    >>> model = SmallCNN(num_classes=3, in_channels=1, width=4)
    >>> forget = TensorDataset(torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))
    >>> masks = compute_saliency(model, forget, ratio=0.5, mode="hard")
    >>> len(masks) == len(list(model.parameters()))
    True
    """
    scores = forget_gradient_scores(model, forget, device=device, progress=progress)
    return saliency_from_scores(scores, ratio, mode, backend, saliency_storage)
