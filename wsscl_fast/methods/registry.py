"""A tiny registry: each method is one file that registers a run function and its config class."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from .. import distributed
from ..execution import Execution, Runtime
from ..seeding import stream_generator
from ..work import WorkCount


@dataclass
class MethodContext:
    """What a method needs besides the model, the loaders and its config."""

    runtime: Runtime = field(default_factory=Runtime)  #: where and how it runs (resolved: device and execution set)
    seed: int = 0
    holdout: Dataset | None = None  #: unseen data, for settings calibrated on it (WSS-CL's kl_bound="auto")
    timings: dict = field(default_factory=dict)  #: stage name -> seconds
    info: dict = field(default_factory=dict)  #: values a method chose at run time (e.g. WSS-CL's KL bound)
    work: WorkCount | None = None  #: the run's count of samples through the model (set by unlearn())
    stage_work: dict = field(default_factory=dict)  #: stage name -> sample-passes (work.py), when ``work`` is set

    def __post_init__(self):
        self.runtime = self.runtime.resolved()

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def backend(self) -> str | None:
        return self.runtime.backend

    @property
    def execution(self) -> Execution:
        return self.runtime.execution

    @property
    def run_state(self):
        return self.runtime.run_state

    @property
    def progress(self) -> bool:
        return self.runtime.progress and distributed.is_main()

    @contextmanager
    def stage(self, name: str):
        """Time a stage of the method (synchronising the device at both ends) and count its work."""
        self.sync()
        start, passes = time.perf_counter(), self.work.sample_passes if self.work is not None else 0
        try:
            yield
        finally:
            self.sync()
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
            if self.work is not None:
                self.stage_work[name] = self.stage_work.get(name, 0) + self.work.sample_passes - passes

    def sync(self):
        """Wait for the device, so that wall-clock timings are honest."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def generator(self, stream: str) -> torch.Generator:
        """The generator of the named random stream ``stream`` (seeding.py), on the device;
        a resumable run saves its state."""
        generator = stream_generator(self.seed, stream, self.device)
        if self.run_state is not None:
            self.run_state.track(generator)
        return generator

    def parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module to call in the loss: DistributedDataParallel under torchrun, then the
        execution's channels-last inputs and torch.compile when enabled."""
        return self.execution.module_to_call(distributed.wrap(module, self.device))

    def loop(self, steps_per_epoch: int) -> dict:
        """The keyword arguments that make a ``run_steps`` loop checkpoint at epoch boundaries."""
        return dict(run_state=self.run_state, steps_per_epoch=steps_per_epoch, progress=self.progress,
                    execution=self.execution)


RunFunction = Callable[[torch.nn.Module, DataLoader, DataLoader, object, MethodContext], None]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    run: RunFunction
    config_class: type
    description: str
    reads: tuple[str, ...]  #: the config fields the method reads; setting any other is refused

    def applied(self, config) -> dict:
        """The fields of ``config`` this method reads: what a record says was applied."""
        return {k: v for k, v in config.to_dict().items() if k in self.reads}


METHODS: dict[str, MethodSpec] = {}

#: the fields every method reads through its loaders, optimizer and augmentation (methods/common.py)
SHARED_FIELDS = ("batch_size", "momentum", "weight_decay", "aug_pad", "aug_flip")


def register(name: str, config_class: type, description: str, reads: tuple[str, ...] | None = None):
    """Decorator: ``@register("ft", BaselineConfig, "fine-tune on D_r", reads=(...))`` on
    ``run(model, forget, retain, config, ctx)``. ``reads``: the method's own fields besides
    :data:`SHARED_FIELDS` (None: every field of ``config_class``)."""
    every = tuple(f.name for f in fields(config_class))
    chosen = every if reads is None else tuple(f for f in every if f in (*SHARED_FIELDS, *reads))
    unknown = set(reads or ()) - set(every)
    if unknown:
        raise ValueError(f"{name} declares fields {sorted(unknown)} that {config_class.__name__} does not have")

    def decorate(run: RunFunction) -> RunFunction:
        METHODS[name] = MethodSpec(name, run, config_class, description, chosen)
        return run

    return decorate


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]
