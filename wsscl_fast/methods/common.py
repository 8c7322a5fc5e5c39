"""Pieces the methods share: optimizers, batch helpers, the SimCLR loss and the RL batch schedule."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import augment_batch
from ..optim import MaskedSGD


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


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric SimCLR InfoNCE of two views (B, D) each: for each of the 2B views, the positive
    is its other view and the negatives are the other 2B - 2 views; cosine similarities / T,
    averaged over the 2B anchors."""
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # a view is not its own negative
    b = z_a.shape[0]
    positives = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, positives)


def mixed_batches(forget_loader, retain_loader, epochs: int, order_generator: torch.Generator):
    """SalUn's RL epoch, without copying datasets: every forget and retain batch once per
    epoch, in the random order that ``order_generator`` draws. Yields ("forget" | "retain", batch)."""
    for _ in range(epochs):
        tags = ["forget"] * len(forget_loader) + ["retain"] * len(retain_loader)
        iterators = {"forget": iter(forget_loader), "retain": iter(retain_loader)}
        for i in torch.randperm(len(tags), generator=order_generator).tolist():
            yield tags[i], next(iterators[tags[i]])
