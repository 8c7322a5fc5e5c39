"""Training loops: the original model's recipe (also Retrain's) and the shared step loop."""
from __future__ import annotations

import itertools
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import as_loader, augment_batch


def device_generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded generator on ``device`` for augmentation and sampling."""
    return torch.Generator(device=device).manual_seed(seed)


def cycle(loader) -> Iterable:
    """Endless iteration over a DataLoader, reshuffling each pass."""
    while True:
        yield from loader


def run_steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, loss_fn: Callable,
              *, total: int, desc: str, progress: bool, scheduler=None) -> None:
    """loss_fn(batch) -> scalar; one optimizer step per batch. Stops with a clear error
    naming ``desc`` and the step if the loss becomes NaN or inf."""
    model.train()
    for step, batch in enumerate(tqdm(itertools.islice(batches, total), total=total, desc=desc,
                                      disable=not progress, leave=False)):
        loss = loss_fn(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def epoch_batches(loader, epochs: int) -> Iterable:
    return itertools.chain.from_iterable(loader for _ in range(epochs))


def train_model(model: nn.Module, train_data, config: TrainConfig, device: torch.device, seed: int = 0,
                progress: bool = True, desc: str = "train") -> nn.Module:
    """Train ``model`` in place: SGD + one-cycle schedule, CE loss, batch augmentation."""
    model.to(device)
    loader = as_loader(train_data, config.batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    total = config.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.25)
    generator = device_generator(device, seed)

    def loss_fn(batch):
        x = augment_batch(batch[0].to(device), config.aug_pad, config.aug_flip, generator)
        return F.cross_entropy(model(x), batch[1].to(device))

    run_steps(model, optimizer, epoch_batches(loader, config.epochs), loss_fn, total=total, desc=desc,
              progress=progress, scheduler=scheduler)
    model.eval()
    return model
