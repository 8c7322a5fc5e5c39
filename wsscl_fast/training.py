"""Training loops: the original model's recipe (also Retrain's) and the shared step loop."""
from __future__ import annotations

import itertools
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .config import TrainConfig
from .data import augment_batch, make_loader
from .execution import Execution
from .progress import step_bar
from .seeding import training_generator


def cycle(loader) -> Iterable:
    """Endless iteration over a DataLoader, reshuffling each pass."""
    while True:
        yield from loader


_CHECK_EVERY = 100  # steps between non-finite checks when a loop has no epoch length


def run_steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, loss_fn: Callable,
              *, total: int, desc: str, progress: bool, scheduler=None, run_state=None,
              steps_per_epoch: int | None = None, execution: Execution | None = None,
              on_epoch_end: Callable[[int], None] | None = None) -> None:
    """loss_fn(batch) -> scalar; one optimizer step per batch, with the forward under
    ``execution``'s autocast (bf16 on the fast path; none by default). Stops with a clear error naming ``desc`` and the first step
    whose loss was NaN or inf. The loss is checked on the device and read back once per
    epoch (and before every checkpoint), so the loop has no host sync per step.

    ``on_epoch_end(steps_done)`` runs after every ``steps_per_epoch`` steps and after the last
    step, before that boundary's checkpoint.

    With a :class:`~wsscl_fast.runstate.RunState`, the loop checkpoints every
    ``steps_per_epoch`` steps and at its end, resumes from a saved state, and stops at the
    next step boundary when a signal asked it to.
    """
    batches = iter(itertools.islice(batches, total))
    start = 0
    if run_state is not None:
        mode = run_state.enter_loop(desc)
        if mode == "skip":
            return
        if mode == "resume":
            start = run_state.restore(batches, model, optimizer, scheduler)
    model.train()
    device = next(model.parameters()).device
    execution = execution or Execution.reference()  # None: no autocast
    check_every = steps_per_epoch or _CHECK_EVERY
    first_bad = None  # (step, loss) of the first non-finite loss, kept on the device
    try:
        for step, batch in enumerate(step_bar(batches, initial=start, total=total, desc=desc, enabled=progress),
                                     start=start):
            with execution.autocast_context(device):
                loss = loss_fn(batch)
            first_bad = _track_nonfinite(first_bad, loss.detach().float(), step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            done = step + 1
            if done == total or done % check_every == 0:
                _raise_if_nonfinite(first_bad, desc)
            if on_epoch_end is not None and (done == total or (steps_per_epoch and done % steps_per_epoch == 0)):
                on_epoch_end(done)
            if run_state is not None:
                if done == total or (steps_per_epoch and done % steps_per_epoch == 0):
                    run_state.save(done, desc, model, optimizer, scheduler)
                run_state.check_stop(desc, done)
    finally:
        if run_state is not None:  # a signal outside the loop interrupts at once
            run_state.leave_loop()


def _track_nonfinite(first_bad, loss: torch.Tensor, step: int):
    """Device-side record of the first non-finite loss: a (2,) tensor [step, loss], step -1 if none."""
    if first_bad is None:
        first_bad = loss.new_full((2,), -1.0)  # a fill on the device, not a copy from the host
    record = torch.stack([torch.full_like(loss, step), loss])
    fresh = (first_bad[0] < 0) & ~torch.isfinite(loss)
    return torch.where(fresh, record, first_bad)


def _raise_if_nonfinite(first_bad, desc: str) -> None:
    if first_bad is None:
        return
    step, loss = first_bad.tolist()  # the loop's one host sync per check
    if step >= 0:
        raise FloatingPointError(f"{desc}: the loss became {loss} at step {int(step)}")


def epoch_batches(loader, epochs: int) -> Iterable:
    return itertools.chain.from_iterable(loader for _ in range(epochs))


def train_model(model: nn.Module, train_data, config: TrainConfig, device: torch.device, seed: int = 0,
                progress: bool = True, desc: str = "train", run_state=None,
                execution: Execution | None = None) -> nn.Module:
    """Train ``model`` in place: SGD + one-cycle schedule, CE loss, batch augmentation.
    ``run_state`` (a :class:`~wsscl_fast.runstate.RunState`) makes it resumable;
    ``execution`` picks the reference or the fast path (default: fast on CUDA)."""
    device = torch.device(device)
    execution = execution or Execution.default_for(device)
    execution.prepare_model(model.to(device))
    # under torchrun: this rank's share of every batch, DDP-averaged gradients
    loader = make_loader(train_data, config.batch_size, shuffle=True, seed=seed,
                         device=device if execution.device_data else None)
    net = execution.module_to_call(distributed.wrap(model, device))
    if run_state is not None:
        run_state.track_loader(loader)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    total = config.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.25)
    generator = training_generator(seed, device)
    if run_state is not None:
        run_state.track(generator)

    def loss_fn(batch):
        x = augment_batch(batch[0].to(device), config.aug_pad, config.aug_flip, generator)
        return F.cross_entropy(net(x), batch[1].to(device))

    run_steps(model, optimizer, epoch_batches(loader, config.epochs), loss_fn, total=total, desc=desc,
              progress=progress and distributed.is_main(), scheduler=scheduler, run_state=run_state,
              steps_per_epoch=len(loader), execution=execution)
    model.eval()
    return model
