"""Saliency-masked optimizers: drop-in ``torch.optim`` subclasses.

The saliency w (bool mask or float weight in [0, 1], one tensor per parameter) scales
the *update*, not the gradient; a coordinate with w == 0 never changes, neither its
parameter nor its optimizer state (weight decay included). With w == 1 everywhere the
steps equal ``torch.optim.SGD`` / ``torch.optim.AdamW``. Semantics: docs/method.md.
``saliency_storage="bits"`` keeps hard masks packed 1 bit per coordinate and ``"uint8"`` keeps
soft weights as q / 255 (``saliency_storage.store_saliency``). The steps themselves are
``ops.masked_update``'s. fp16/bf16 parameters get fp32 state.

>>> import torch
>>> model = torch.nn.Linear(4, 2)
>>> masks = [torch.ones_like(p, dtype=torch.bool) for p in model.parameters()]
>>> opt = MaskedSGD(model.parameters(), masks, lr=0.1, momentum=0.9)
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .ops.masked_update import masked_adamw_step, masked_sgd_step
from .precision import compute_dtype
from .saliency_storage import store_saliency


class _MaskedOptimizer(torch.optim.Optimizer):
    """Stores each group's saliency list (in its ``saliency_storage`` form) beside its params,
    so state_dict() carries it."""

    def __init__(self, params: Iterable, saliency: Sequence[torch.Tensor], defaults: dict, backend: str | None,
                 saliency_storage: str):
        super().__init__(params, dict(defaults, saliency_storage=saliency_storage))
        all_params = [p for group in self.param_groups for p in group["params"]]
        saliency = store_saliency(all_params, list(saliency), saliency_storage)
        start = 0
        for group in self.param_groups:
            group["saliency"] = saliency[start : start + len(group["params"])]
            start += len(group["params"])
        self.backend = backend

    def _live_parameters(self, group: dict):
        """(param, grad, saliency) for the parameters of ``group`` that have a gradient."""
        live = []
        for p, w in zip(group["params"], group["saliency"]):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            live.append((p, p.grad, w))
        return live

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            live = self._live_parameters(group)
            if live:
                self._step_group(group, live)
        return loss


class MaskedSGD(_MaskedOptimizer):
    """SGD whose update is scaled by a per-coordinate saliency (dampening 0).

    For w > 0: d = g + wd*p; buf = mu*buf + d; u = d + mu*buf (Nesterov) or buf;
    p <- p - lr*w*u. Coordinates with w == 0 keep parameter and buffer.
    """

    def __init__(self, params, saliency, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, backend: str | None = None, saliency_storage: str = "dense"):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and momentum <= 0:
            raise ValueError("nesterov=True needs momentum > 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, saliency, defaults, backend, saliency_storage)

    def _step_group(self, group, live):
        params, grads, saliencies = (list(t) for t in zip(*live))
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        new_buffers = masked_sgd_step(
            params, grads, saliencies, buffers, lr=group["lr"], momentum=group["momentum"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"], storage=group["saliency_storage"],
            backend=self.backend,
        )
        if group["momentum"] != 0:
            for p, b in zip(params, new_buffers):
                self.state[p]["momentum_buffer"] = b


class MaskedAdamW(_MaskedOptimizer):
    """AdamW whose update (decoupled weight decay included) is scaled by a saliency.

    p <- p*(1 - lr*wd*w); where w > 0: m, v updated as Adam,
    p <- p - lr*w*m_hat/(sqrt(v_hat) + eps), with a per-tensor step count.
    """

    def __init__(self, params, saliency, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, backend: str | None = None,
                 saliency_storage: str = "dense"):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, saliency, defaults, backend, saliency_storage)

    def _step_group(self, group, live):
        params, grads, saliencies = (list(t) for t in zip(*live))
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, dtype=compute_dtype(p.dtype), memory_format=torch.contiguous_format)
                state["exp_avg_sq"] = torch.zeros_like(p, dtype=compute_dtype(p.dtype), memory_format=torch.contiguous_format)
            state["step"] += 1
        beta1, beta2 = group["betas"]
        masked_adamw_step(
            params, grads, saliencies,
            [self.state[p]["exp_avg"] for p in params], [self.state[p]["exp_avg_sq"] for p in params],
            [self.state[p]["step"] for p in params],
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            storage=group["saliency_storage"], backend=self.backend,
        )
