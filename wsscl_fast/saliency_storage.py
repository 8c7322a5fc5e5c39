"""The one home of the saliency storage rules: which forms a mode may take, and the conversions.

- ``"dense"``: bool masks (hard) or float weights in [0, 1] (soft), of the parameter's shape;
- ``"bits"``: hard masks packed 1 bit per coordinate, (ceil(n / 8),) uint8, least significant
  bit first, padding bits 0;
- ``"uint8"``: soft weights quantised to q / 255, q = floor(255 w + 1/2), raised to 1 where
  w > 0, so that quantisation keeps the set of frozen coordinates (w == 0 iff q == 0).

The masked optimizers take all three (:func:`store_saliency`); the saliency ops emit them.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

SALIENCY_STORAGES = ("dense", "bits", "uint8")
STORAGES_BY_MODE = {"hard": ("dense", "bits"), "soft": ("dense", "uint8")}  #: what each saliency mode may be stored as


def storage_for(mode: str) -> str:
    """How the unlearning methods keep saliency: hard masks packed 1 bit per weight, soft weights in fp32."""
    return "bits" if mode == "hard" else "dense"


def check_mode_and_storage(mode: str, storage: str) -> None:
    if mode not in STORAGES_BY_MODE:
        raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
    if storage not in STORAGES_BY_MODE[mode]:
        raise ValueError(f"saliency_storage must be one of {STORAGES_BY_MODE[mode]} for mode={mode!r}, got {storage!r}")


def keep_count(num_scores: int, ratio: float) -> int:
    """How many coordinates a fraction ``ratio`` of ``num_scores`` keeps: round(ratio * n), at least 1."""
    return min(num_scores, max(1, int(math.floor(ratio * num_scores + 0.5))))


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """A bool mask as (ceil(n / 8),) uint8: bit j of byte i = mask.flatten()[8 i + j]."""
    flat = mask.reshape(-1).to(torch.uint8)
    padded = torch.cat([flat, flat.new_zeros((-flat.numel()) % 8)]).reshape(-1, 8)
    bit_values = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=mask.device)
    return (padded * bit_values).sum(dim=1, dtype=torch.uint8)


def unpack_mask(bits: torch.Tensor, shape) -> torch.Tensor:
    """Inverse of :func:`pack_mask`: the bool mask of ``shape``."""
    numel = math.prod(shape)
    bit_positions = torch.arange(8, dtype=torch.uint8, device=bits.device)
    unpacked = (bits.reshape(-1, 1) >> bit_positions) & 1  # (bytes, 8)
    return unpacked.reshape(-1)[:numel].bool().reshape(shape)


def quantize_saliency(weights: torch.Tensor) -> torch.Tensor:
    """Soft weights in [0, 1] to uint8 q (see the module docstring)."""
    q = torch.floor(weights.float() * 255 + 0.5).clamp(0, 255)
    q = torch.where(weights > 0, q.clamp(min=1), q)
    return q.to(torch.uint8)


def dequantize_saliency(q: torch.Tensor) -> torch.Tensor:
    """uint8 saliency back to float32 weights: w = q / 255."""
    return q.float() / 255


def dense_saliency(saliency: torch.Tensor, storage: str, shape) -> torch.Tensor:
    """A stored saliency tensor as the bool mask or float weights of ``shape`` it stands for."""
    if storage == "bits":
        return unpack_mask(saliency, shape)
    if storage == "uint8":
        return dequantize_saliency(saliency)
    return saliency


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
        return pack_mask(w)
    if storage == "uint8" and w.dtype == torch.uint8:
        return w
    if w.dtype == torch.bool:  # a hard mask: as it is, or as uint8 0 / 255
        return w if storage == "dense" else w.to(torch.uint8) * 255
    if not w.is_floating_point():
        expected = "bool (hard mask) or floating (soft weights in [0, 1])" if storage == "dense" else \
            "floating weights in [0, 1] (or their uint8 quantised form)"
        raise TypeError(f"saliency[{i}] must be {expected}, got {w.dtype}")
    _check_unit_interval(i, w)
    return quantize_saliency(w) if storage == "uint8" else w


def store_saliency(params: Sequence[torch.Tensor], saliency: Sequence[torch.Tensor],
                   storage: str = "dense") -> list[torch.Tensor]:
    """Check one saliency tensor per parameter and bring it to ``storage`` form: bool masks are
    packed for ``"bits"`` (packed masks kept); float weights are quantised for ``"uint8"`` (uint8
    kept, a bool mask becomes 0 / 255). The caller's tensors are never modified."""
    if storage not in SALIENCY_STORAGES:
        raise ValueError(f"saliency_storage must be one of {SALIENCY_STORAGES}, got {storage!r}")
    if len(saliency) != len(params):
        raise ValueError(f"saliency must have one tensor per parameter: got {len(saliency)} for {len(params)} parameters")
    return [_store_one(i, p, w, storage) for i, (p, w) in enumerate(zip(params, saliency))]
