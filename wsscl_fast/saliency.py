"""Stage 0: weight saliency of the forget set (the SalUn mask, and our soft weights).

g = | sum over forget batches of grad_theta CE(f_theta(x), y) |  (eval mode, eval transform,
raw gradients accumulated, abs taken once at the end). t = global top-``ratio`` threshold.
hard: m = 1[g >= t];  soft: s = clamp(g / t, 0, 1).
Storage: ``"dense"`` (bool masks, float32 weights), ``"bits"`` (hard masks packed 1 bit per
coordinate) or ``"uint8"`` (soft weights quantised to q / 255); the masked optimizers take all
three; every public function spells the keyword ``saliency_storage=``. The threshold and the
emission are ``ops.saliency_select``'s.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .data import as_loader
from .ops.saliency_select import saliency_from_scores
from .progress import step_bar


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
