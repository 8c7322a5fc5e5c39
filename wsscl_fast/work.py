"""Deterministic cost: the samples a run passes through the model, counted by hooks, not timed.

A forward pass with autograd on costs about 3 sample-passes (the forward and a backward of
twice its cost); one without costs 1. ``work = 3 * trained + inferred``. Copies of the model
made during the run (SCRUB's teacher, a saliency probe) carry the hook and count too. Unlike
seconds, the count does not move with the machine's load, so a cost cap counted in work gives
the same verdict on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

BACKWARD_FACTOR = 3  #: sample-passes of one sample forward and backward


@dataclass
class WorkCount:
    trained: int = 0  #: samples forwarded with autograd on (a backward follows)
    inferred: int = 0  #: samples forwarded without autograd

    @property
    def sample_passes(self) -> int:
        return BACKWARD_FACTOR * self.trained + self.inferred

    def to_dict(self) -> dict:
        return {"trained_samples": self.trained, "inferred_samples": self.inferred,
                "sample_passes": self.sample_passes}


def retrain_work(epochs: int, retain_size: int) -> int:
    """Sample-passes of training ``epochs`` epochs on ``retain_size`` samples."""
    return BACKWARD_FACTOR * epochs * retain_size


class counting_work:
    """``with counting_work(model) as count:`` counts every batch passed to ``model`` (and to
    copies made of it inside the block) until exit."""

    def __init__(self, model: nn.Module):
        self.model, self.count, self._handle = model, WorkCount(), None

    def __enter__(self) -> WorkCount:
        count = self.count

        def hook(_module, args):  # a plain function: deepcopy shares it, so copies count into the same total
            if args and isinstance(args[0], torch.Tensor) and args[0].dim() > 0:
                if torch.is_grad_enabled():
                    count.trained += args[0].shape[0]
                else:
                    count.inferred += args[0].shape[0]

        self._handle = self.model.register_forward_pre_hook(hook)
        return count

    def __exit__(self, *exc) -> None:
        self._handle.remove()
