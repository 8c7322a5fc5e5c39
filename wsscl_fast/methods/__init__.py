"""Unlearning methods, one file each, behind :func:`get_method`."""
from . import ft, ga, l1_sparse, retrain, rl, salun, wsscl  # noqa: F401  (registration)
from .registry import METHODS, MethodContext, get_method

__all__ = ["METHODS", "MethodContext", "get_method"]
