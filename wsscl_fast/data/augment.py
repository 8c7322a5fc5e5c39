"""Batch augmentation: crops and flips of whole batches, on the batch's device, so no
per-image PIL work happens in a training loop."""
from __future__ import annotations

import torch


def augment_batch(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` pixels and random horizontal flip, per image.

    x: (B, C, H, W) normalised images; returns a new tensor of the same shape. Padding
    happens after normalisation, so the border is the dataset mean, not black.
    """
    if pad == 0 and not flip:  # nothing to do (and any input shape is fine)
        return x
    b, _, h, w = x.shape
    rand_device = generator.device if generator is not None else x.device
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy, dx = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=rand_device).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        flips = (torch.rand(b, generator=generator, device=rand_device) < 0.5).to(x.device)
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    return x.contiguous()
