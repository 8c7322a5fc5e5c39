"""Saliency-masked optimizers: drop-in ``torch.optim`` subclasses.

The saliency w (bool mask or float weight in [0, 1], one tensor per parameter) scales
the *update*, not the gradient; a coordinate with w == 0 never changes, neither its
parameter nor its optimizer state (weight decay included). With w == 1 everywhere the
steps equal ``torch.optim.SGD`` / ``torch.optim.AdamW``. Semantics: docs/method.md.
``saliency_storage="bits"`` keeps hard masks packed 1 bit per coordinate and ``"uint8"`` keeps
soft weights as q / 255 (:func:`store_saliency`). fp16/bf16 parameters get fp32 state.

>>> import torch
>>> model = torch.nn.Linear(4, 2)
>>> masks = [torch.ones_like(p, dtype=torch.bool) for p in model.parameters()]
>>> opt = MaskedSGD(model.parameters(), masks, lr=0.1, momentum=0.9)
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from . import backends
from .precision import compute_dtype
from .reference import (dequantize_saliency_ref, masked_adamw_step_ref, masked_sgd_step_ref, pack_mask_ref,
                        quantize_saliency_ref, unpack_mask_ref)


SALIENCY_STORAGES = ("dense", "bits", "uint8")


def _check_unit_interval(i: int, w: torch.Tensor) -> None:
    if w.numel() and not bool(((w >= 0) & (w <= 1)).all()):
        raise ValueError(f"saliency[{i}] has values outside [0, 1] (or NaN): min {w.min().item()}, max {w.max().item()}")


def _store_one(i: int, p: torch.Tensor, w, storage: str) -> torch.Tensor:
    """Saliency ``w`` of parameter ``p`` in ``storage`` form (a new tensor when converted)."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"saliency[{i}] must be a tensor, got {type(w).__name__}")
    if w.device != p.device:
        raise ValueError(f"saliency[{i}] is on {w.device} but its parameter is on {p.device}")
    if storage == "bits" and w.dtype == torch.uint8:
        packed_shape = ((p.numel() + 7) // 8,)
        if tuple(w.shape) != packed_shape:
            raise ValueError(f"saliency[{i}] is a packed mask of shape {tuple(w.shape)} but its parameter "
                             f"({p.numel()} coordinates) needs {packed_shape}")
        return w
    if w.shape != p.shape:
        raise ValueError(f"saliency[{i}] has shape {tuple(w.shape)} but its parameter has shape {tuple(p.shape)}")
    if storage == "bits":
        if w.dtype != torch.bool:
            raise TypeError(f"saliency[{i}]: saliency_storage='bits' takes bool masks (or their packed uint8 form), "
                            f"got {w.dtype}")
        return pack_mask_ref(w)
    if storage == "uint8" and w.dtype == torch.uint8:
        return w
    if w.dtype == torch.bool:  # a hard mask: as it is, or as uint8 0 / 255
        return w if storage == "dense" else w.to(torch.uint8) * 255
    if not w.is_floating_point():
        expected = "bool (hard mask) or floating (soft weights in [0, 1])" if storage == "dense" else \
            "floating weights in [0, 1] (or their uint8 quantised form)"
        raise TypeError(f"saliency[{i}] must be {expected}, got {w.dtype}")
    _check_unit_interval(i, w)
    return quantize_saliency_ref(w) if storage == "uint8" else w


def store_saliency(params: Sequence[torch.Tensor], saliency: Sequence[torch.Tensor],
                   storage: str = "dense") -> list[torch.Tensor]:
    """Check one saliency tensor per parameter and bring it to ``storage`` form:

    - ``"dense"``: bool masks or float weights in [0, 1] of the parameter's shape, kept as given;
    - ``"bits"``: hard masks packed 1 bit per coordinate, (ceil(n / 8),) uint8
      (``reference.pack_mask_ref``); bool masks are packed, packed masks kept;
    - ``"uint8"``: soft weights quantised to q / 255 (``reference.quantize_saliency_ref``,
      which keeps every nonzero weight nonzero); float weights are quantised, uint8 kept, and
      a bool mask becomes 0 / 255 (weights exactly 0 and 1).

    The caller's tensors are never modified.
    """
    if storage not in SALIENCY_STORAGES:
        raise ValueError(f"saliency_storage must be one of {SALIENCY_STORAGES}, got {storage!r}")
    if len(saliency) != len(params):
        raise ValueError(f"saliency must have one tensor per parameter: got {len(saliency)} for {len(params)} parameters")
    return [_store_one(i, p, w, storage) for i, (p, w) in enumerate(zip(params, saliency))]


def dense_saliency(saliency: torch.Tensor, storage: str, shape) -> torch.Tensor:
    """A stored saliency tensor as the bool mask or float weights of ``shape`` it stands for."""
    if storage == "bits":
        return unpack_mask_ref(saliency, shape)
    if storage == "uint8":
        return dequantize_saliency_ref(saliency)
    return saliency


# the fused steps, imported lazily: triton and the C++ extension are optional
def _sgd_triton():
    from .kernels.masked_update import masked_sgd_triton
    return masked_sgd_triton


def _sgd_cpp():
    from .cpp_ops import masked_sgd_cpp
    return masked_sgd_cpp


def _adamw_triton():
    from .kernels.masked_update import masked_adamw_triton
    return masked_adamw_triton


def _adamw_cpp():
    from .cpp_ops import masked_adamw_cpp
    return masked_adamw_cpp


class _MaskedOptimizer(torch.optim.Optimizer):
    """Stores each group's saliency list (in its ``saliency_storage`` form) beside its params,
    so state_dict() carries it."""

    _op_name: str
    _implementations: dict

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

    def _implementation(self, device: torch.device):
        return backends.resolve(self._op_name, device, self._implementations, self.backend)[1]

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


def _sgd_torch(params, grads, saliencies, buffers, *, lr, momentum, weight_decay, nesterov, storage):
    return [
        masked_sgd_step_ref(p, g, dense_saliency(w, storage, p.shape), b, lr=lr, momentum=momentum,
                            weight_decay=weight_decay, nesterov=nesterov)
        for p, g, w, b in zip(params, grads, saliencies, buffers)
    ]


def _adamw_torch(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, weight_decay,
                 storage):
    for p, g, w, m, v, k in zip(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps):
        masked_adamw_step_ref(p, g, dense_saliency(w, storage, p.shape), m, v, k, lr=lr, beta1=beta1, beta2=beta2,
                              eps=eps, weight_decay=weight_decay)


class MaskedSGD(_MaskedOptimizer):
    """SGD whose update is scaled by a per-coordinate saliency (dampening 0).

    For w > 0: d = g + wd*p; buf = mu*buf + d; u = d + mu*buf (Nesterov) or buf;
    p <- p - lr*w*u. Coordinates with w == 0 keep parameter and buffer.
    """

    _op_name = "masked_sgd_step"
    _implementations = {"triton": _sgd_triton, "torch": lambda: _sgd_torch, "cpp": _sgd_cpp}

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
        new_buffers = self._implementation(params[0].device)(
            params, grads, saliencies, buffers, lr=group["lr"], momentum=group["momentum"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"], storage=group["saliency_storage"],
        )
        if group["momentum"] != 0:
            for p, b in zip(params, new_buffers):
                self.state[p]["momentum_buffer"] = b


class MaskedAdamW(_MaskedOptimizer):
    """AdamW whose update (decoupled weight decay included) is scaled by a saliency.

    p <- p*(1 - lr*wd*w); where w > 0: m, v updated as Adam,
    p <- p - lr*w*m_hat/(sqrt(v_hat) + eps), with a per-tensor step count.
    """

    _op_name = "masked_adamw_step"
    _implementations = {"triton": _adamw_triton, "torch": lambda: _adamw_torch, "cpp": _adamw_cpp}

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
        self._implementation(params[0].device)(
            params, grads, saliencies,
            [self.state[p]["exp_avg"] for p in params], [self.state[p]["exp_avg_sq"] for p in params],
            [self.state[p]["step"] for p in params],
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            storage=group["saliency_storage"],
        )
