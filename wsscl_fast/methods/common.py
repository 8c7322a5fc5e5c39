"""Pieces the baseline methods share: optimizers, batch helpers and the RL batch schedule."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import augment_batch
from ..optim import MaskedSGD


def saliency_storage(mode: str) -> str:
    """How the methods keep saliency: hard masks packed 1 bit per weight, soft weights in fp32."""
    return "bits" if mode == "hard" else "dense"


def make_sgd(model, config, lr: float, saliency=None, backend=None, storage: str = "dense") -> torch.optim.Optimizer:
    """Plain SGD, or saliency-masked SGD when ``saliency`` (in ``storage`` form) is given."""
    if saliency is None:
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return MaskedSGD(model.parameters(), saliency, lr=lr, momentum=config.momentum,
                     weight_decay=config.weight_decay, backend=backend, saliency_storage=storage)


def augmented(batch, config, ctx, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(augmented images, labels) of a loader batch, on the context's device."""
    x = augment_batch(batch[0].to(ctx.device), config.aug_pad, config.aug_flip, generator)
    return x, batch[1].to(ctx.device)


def cross_entropy_step(model, config, ctx, generator):
    """loss_fn for run_steps: CE on an augmented batch."""
    return lambda batch: F.cross_entropy(model(augmented(batch, config, ctx, generator)[0]), batch[1].to(ctx.device))


def mixed_batches(forget_loader, retain_loader, epochs: int, seed: int):
    """SalUn's RL epoch, without copying datasets: every forget and retain batch once per
    epoch, in a seeded random order. Yields ("forget" | "retain", batch)."""
    order_generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        tags = ["forget"] * len(forget_loader) + ["retain"] * len(retain_loader)
        iterators = {"forget": iter(forget_loader), "retain": iter(retain_loader)}
        for i in torch.randperm(len(tags), generator=order_generator).tolist():
            yield tags[i], next(iterators[tags[i]])
