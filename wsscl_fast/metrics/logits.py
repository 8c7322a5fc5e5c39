"""A model's logits over a dataset: what the per-example distances compare."""
from __future__ import annotations

import torch
from torch import nn

from ..data import make_loader


@torch.no_grad()
def logits_on(model: nn.Module, data, device=None) -> torch.Tensor:
    """(len(data), classes) fp32 eval-mode logits of ``model`` on ``data`` (a Dataset of (x, y)), in
    order; the model is left in eval mode. ``device``: where to run (default: the model's)."""
    device = device or next(model.parameters()).device
    model.eval()
    return torch.cat([model(x.to(device)).float() for x, _ in make_loader(data, 512, shuffle=False)])
