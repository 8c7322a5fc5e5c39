"""Resumable runs: epoch-boundary checkpoints of a run's step loops, and clean stops on signals.

A run (``train`` or ``unlearn``) is a fixed sequence of step loops (``training.run_steps``
calls), each known by its name (``desc``, unique within a run). At each epoch boundary the
current loop saves, atomically: the model, optimizer (saliency included) and scheduler
states, the loop's name, the names of the loops finished before it, the step,
and the states of every tracked random generator (the run's DataLoader and augmentation
generators and torch's global RNG), both now and at the loop's start.

On resume, the loops finished before the saved one are skipped; the saved loop resets the generators
to their loop-start states, replays its batch iterator up to the saved step without
computing (so the iterator is exactly where it was), then loads the model, optimizer,
scheduler and current generator states. The rest of the run is then bit-identical to an
uninterrupted one on the same device and backend.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from . import distributed
from .checkpoint import atomic_save

STATE_VERSION = 2


class RunInterrupted(RuntimeError):
    """The run stopped on SIGINT/SIGTERM at a step boundary; the last checkpoint is kept."""


class RunState:
    """Checkpointing and stop requests of one run. ``fingerprint`` (a dict of plain values)
    identifies the run, together with the package version; resuming a state saved by a
    different run, or by another version of wsscl_fast, is refused."""

    def __init__(self, path, fingerprint: dict, resume: bool = False):
        from .version import __version__

        self.path = Path(path)
        self.fingerprint = {**fingerprint, "wsscl_fast": __version__}
        self.generators: list[torch.Generator] = []
        self.entered: list[str] = []  # the names of the loops this run has started, in order
        self.stop_requested = False
        self.in_loop = False  #: inside a step loop, which stops at its next step boundary on a signal
        self.saved = self._load() if resume else None
        self._loop_start_states = None
        self.attached: dict = {}  #: name -> object whose state_dict() every checkpoint saves

    def _load(self) -> dict:
        if not self.path.is_file():
            raise FileNotFoundError(f"resume: there is no run state at {self.path} (nothing to resume)")
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"resume: {self.path} is not a readable run state: {str(exc).splitlines()[0]}") from exc
        if not isinstance(blob, dict) or blob.get("version") != STATE_VERSION:
            raise ValueError(f"resume: {self.path} is not a wsscl_fast run state (version {STATE_VERSION})")
        if blob["fingerprint"] != self.fingerprint:
            differ = sorted(k for k in set(blob["fingerprint"]) | set(self.fingerprint)
                            if blob["fingerprint"].get(k) != self.fingerprint.get(k))
            raise ValueError(f"resume: {self.path} was saved by a different run (differs in {differ}); "
                             "resume with the same arguments, or start afresh without --resume")
        return blob

    @property
    def resuming(self) -> bool:
        return self.saved is not None

    def track(self, generator):
        """Add a generator (or anything with ``get_state``/``set_state``, like a sampler) whose
        state is saved and restored; None is ignored."""
        if generator is not None:
            self.generators.append(generator)
        return generator

    def track_loader(self, loader) -> None:
        """Track what orders a DataLoader: a sampler with a state (``distributed.EpochSampler``),
        else the loader's generator (None, and so torch's global RNG, for a user's plain loader)."""
        self.track(loader.sampler if hasattr(loader.sampler, "get_state") else loader.generator)

    def attach(self, name: str, keeper) -> None:
        """Save ``keeper.state_dict()`` with every checkpoint, under ``name``; when resuming,
        load the saved one into it now (state a run carries across its loops, such as
        WSS-CL's best checkpoint so far)."""
        self.attached[name] = keeper
        saved = (self.saved or {}).get("attached", {})
        if name in saved:
            keeper.load_state_dict(saved[name])

    # ------------------------------------------------------------------ generator states
    def _generator_states(self) -> list[torch.Tensor]:
        states = [g.get_state() for g in self.generators] + [torch.get_rng_state()]
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states += torch.cuda.get_rng_state_all()
        return states

    def _set_generator_states(self, states: list[torch.Tensor]) -> None:
        if len(states) < len(self.generators) + 1:
            raise ValueError(f"resume: {self.path} tracks {len(states)} random states, this run "
                             f"{len(self.generators) + 1}; was it saved by another version?")
        for generator, state in zip(self.generators, states):
            generator.set_state(state)
        torch.set_rng_state(states[len(self.generators)])
        cuda_states = states[len(self.generators) + 1:]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)

    # ------------------------------------------------------------------ loop protocol (run_steps)
    def enter_loop(self, name: str) -> str:
        """Start the loop ``name``: ``"skip"`` (it finished before the saved loop), ``"resume"``
        (it is the saved loop) or ``"fresh"``."""
        if name in self.entered:
            raise ValueError(f"a run's loops need distinct names; {name!r} ran twice")
        self.entered.append(name)
        self._loop_start_states = self._generator_states()
        if self.saved is not None and name in self.saved["finished"]:
            return "skip"
        self.in_loop = True
        if self.saved is None:
            return "fresh"
        if name != self.saved["loop"]:
            raise RuntimeError(f"resume: this run reached loop {name!r} before the saved loop {self.saved['loop']!r}")
        return "resume"

    def restore(self, batches, model, optimizer, scheduler=None) -> int:
        """For ``enter_loop() == "resume"``: replay ``batches`` to the saved step and load the
        saved states. Returns the step to continue from."""
        saved, self.saved = self.saved, None
        self._set_generator_states(saved["loop_start_states"])
        self._loop_start_states = saved["loop_start_states"]
        for _ in range(saved["step"]):
            next(batches)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        self._set_generator_states(saved["generator_states"])
        return saved["step"]

    def save(self, step: int, desc: str, model, optimizer, scheduler=None) -> None:
        """Checkpoint the current loop after ``step`` steps (weights checked finite first)."""
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise FloatingPointError(f"{desc}: {name} holds NaN or inf after step {step}; "
                                         f"the last good checkpoint {self.path} is kept")
        if not distributed.is_main():  # every rank holds the same state; rank 0 writes it
            return
        atomic_save(dict(version=STATE_VERSION, fingerprint=self.fingerprint, loop=self.entered[-1],
                         finished=self.entered[:-1], step=step,
                         desc=desc, model=model.state_dict(), optimizer=optimizer.state_dict(),
                         scheduler=scheduler.state_dict() if scheduler is not None else None,
                         loop_start_states=self._loop_start_states, generator_states=self._generator_states(),
                         attached={name: keeper.state_dict() for name, keeper in self.attached.items()}),
                    self.path)

    def leave_loop(self) -> None:
        self.in_loop = False

    def check_stop(self, desc: str, step: int) -> None:
        if not self.stop_requested:
            return
        if not self.path.is_file():  # stopped before the first epoch boundary: there is nothing to resume
            raise RunInterrupted(f"stopped by a signal in {desc} after step {step}, before the first checkpoint "
                                 f"(written at epoch boundaries); nothing was saved, so start again without --resume")
        raise RunInterrupted(f"stopped by a signal in {desc} after step {step}; the last checkpoint is "
                             f"{self.path} (resume with --resume)")

    @contextmanager
    def stop_on_signals(self):
        """While active, SIGINT and SIGTERM inside a step loop ask the run to stop at the next step
        boundary (after the checkpoint where one falls); outside a loop (saliency, evaluation, the
        audit), or on a second signal, they interrupt at once (KeyboardInterrupt)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, frame):
            if self.in_loop and not self.stop_requested:
                self.stop_requested = True
                return
            raise KeyboardInterrupt

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def finish(self) -> None:
        """The run completed and its result is written: the run state is no longer needed."""
        if distributed.is_main():
            self.path.unlink(missing_ok=True)
