"""``nn.Module`` wrappers of the fused losses."""
from __future__ import annotations

import torch
from torch import nn

from .ops.infonce import infonce_loss
from .validation import check_positive


class InfoNCELoss(nn.Module):
    """``nn.Module`` wrapper of :func:`wsscl_fast.ops.infonce_loss`: ``loss = InfoNCELoss()(A, P, R)``."""

    def __init__(self, temperature: float = 0.5, normalize: bool = True, backend: str | None = None):
        super().__init__()
        check_positive("temperature", temperature)
        self.temperature, self.normalize, self.backend = temperature, normalize, backend

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return infonce_loss(anchors, positives, negatives, self.temperature, self.normalize, self.backend)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}"
