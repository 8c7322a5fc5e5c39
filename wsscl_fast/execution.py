"""How the training and unlearning steps execute: the reference path or the fast path.

The fast path changes how a step runs, never what it computes (up to bf16 rounding):

- ``device_data``: batches come from a :class:`~wsscl_fast.data.DeviceLoader` (the
  uint8 dataset kept on the device) instead of a DataLoader;
- ``autocast``: forward passes under ``torch.autocast(dtype=torch.bfloat16)``; losses are
  reduced in fp32, and parameters, gradients and optimizer state stay fp32;
- ``channels_last``: model and inputs in NHWC memory format;
- ``compile``: ``torch.compile`` of the module each stage calls (compiled once per stage,
  so epochs do not recompile).

The default on CUDA is device data + bf16 autocast; ``channels_last`` and ``compile`` are
opt-in until a GPU measurement shows they pay (``benchmarks/kernels/bench_unlearn.py`` times each).
On the CPU the default is the reference path.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn


@dataclass(frozen=True)
class Execution:
    device_data: bool = False
    autocast: bool = False
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def reference(cls) -> "Execution":
        """Plain PyTorch: DataLoader batches, fp32, eager."""
        return cls()

    @classmethod
    def fast(cls, channels_last: bool = False, compile: bool = False) -> "Execution":
        return cls(device_data=True, autocast=True, channels_last=channels_last, compile=compile)

    @classmethod
    def default_for(cls, device: torch.device) -> "Execution":
        return cls.fast() if torch.device(device).type == "cuda" else cls.reference()

    @classmethod
    def from_choice(cls, choice: str, device, channels_last: bool = False, compile: bool = False) -> "Execution":
        """``choice``: "reference", "fast" or "auto" (the device's default, unless a fast-path
        switch is on); the switches belong to the fast path and are refused with "reference"."""
        if choice == "reference":
            if channels_last or compile:
                raise ValueError("--channels-last and --compile belong to the fast path, not --execution reference")
            return cls.reference()
        if choice == "auto" and not (channels_last or compile):
            return cls.default_for(torch.device(device))
        return cls.fast(channels_last=channels_last, compile=compile)

    def to_dict(self) -> dict:
        return asdict(self)

    def autocast_context(self, device: torch.device):
        """bf16 autocast for forward passes when enabled."""
        if not self.autocast:
            return nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Put the model's weights in the memory format this execution uses (in place)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def module_to_call(self, module: nn.Module) -> nn.Module:
        """What a stage calls for ``module``: channels-last inputs and torch.compile when enabled."""
        if self.channels_last:
            module = _ChannelsLastInputs(module)
        if self.compile:
            module = torch.compile(module)
        return module


@dataclass(frozen=True)
class Runtime:
    """Where and how ``unlearn()`` and ``compare()`` run; none of it changes what is computed
    (beyond bf16 rounding on the fast path).

    - ``device``: None runs on the model's device;
    - ``backend``: the op backend ("torch", "cpp", "triton"); None takes ``WSSCL_BACKEND``, else
      the device's default (backends.py);
    - ``execution``: the reference or fast path; None takes :meth:`Execution.default_for` the device;
    - ``progress``: progress bars (on the main rank only under torchrun);
    - ``run_state``: a :class:`~wsscl_fast.runstate.RunState` that checkpoints at epoch
      boundaries and resumes a stopped run.
    """

    device: torch.device | str | None = None
    backend: str | None = None
    execution: Execution | None = None
    progress: bool = True
    run_state: object = None

    def __post_init__(self):
        if self.device is not None and not isinstance(self.device, (str, torch.device)):
            raise TypeError(f"Runtime.device must be a torch.device, a string or None, got {type(self.device).__name__}")
        if self.execution is not None and not isinstance(self.execution, Execution):
            raise TypeError(f"Runtime.execution must be an Execution or None, got {type(self.execution).__name__}")
        if not isinstance(self.progress, bool):
            raise TypeError(f"Runtime.progress must be True or False, got {self.progress!r}")

    def resolved(self, model: nn.Module | None = None) -> "Runtime":
        """This runtime with ``device`` (the model's when None; CPU without a model) and
        ``execution`` (the device's default when None) filled in."""
        device = self.device
        if device is None:
            device = next(model.parameters()).device if model is not None else "cpu"
        device = torch.device(device)
        return replace(self, device=device, execution=self.execution or Execution.default_for(device))


class _ChannelsLastInputs(nn.Module):
    """Calls ``module`` with 4-D inputs converted to channels-last memory format."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor):
        return self.module(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)
