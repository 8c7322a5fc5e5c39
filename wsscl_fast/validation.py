"""Argument checks shared by the public ops: each error names the argument and what was expected."""
from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_matrix(name: str, x: torch.Tensor, columns: int | None = None) -> None:
    """``x`` must be a non-empty 2-D floating tensor (with ``columns`` columns if given)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {tuple(x.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected at least one row, got shape {tuple(x.shape)}")
    if columns is not None and x.shape[1] != columns:
        raise ValueError(f"{name} must have {columns} features (columns) like anchors, got shape {tuple(x.shape)}")


def check_same(name: str, x: torch.Tensor, reference_name: str, reference: torch.Tensor) -> None:
    """``x`` must share dtype and device with ``reference``."""
    if x.dtype != reference.dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but {reference_name} has {reference.dtype}; pass one dtype")
    if x.device != reference.device:
        raise ValueError(f"{name} is on {x.device} but {reference_name} is on {reference.device}; pass one device")


def check_finite(name: str, x: torch.Tensor) -> None:
    """No NaN or inf in ``x`` (one device sync). Inside ``torch.compile`` the check becomes an
    assertion in the graph (RuntimeError at run time), since a Python branch on data would break it."""
    if torch.compiler.is_compiling():
        torch._assert_async(torch.isfinite(x).all(), f"{name} contains NaN or inf values")
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf values")


def check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_fraction(name: str, value: float, low_inclusive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and (0 <= value <= 1 if low_inclusive else 0 < value <= 1)
    if not ok:
        interval = "[0, 1]" if low_inclusive else "(0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
