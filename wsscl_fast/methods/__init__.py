"""Unlearning methods, one file each, behind :func:`get_method`."""
from . import coun, ft, ga, l1_sparse, neggrad_plus, retrain, rl, salun, scrub, wsscl  # noqa: F401  (registration)
from .registry import METHODS, MethodContext, get_method

#: every registered method in the order tables list them: the gold standard, the baselines, WSS-CL
ALL_METHODS = ("retrain", "ft", "ga", "rl", "salun", "l1_sparse", "neggrad_plus", "scrub", "coun", "wsscl")
#: the methods that unlearn (what compare() runs beside Retrain by default)
UNLEARNING_METHODS = tuple(m for m in ALL_METHODS if m != "retrain")
if set(ALL_METHODS) != set(METHODS):
    raise ImportError(f"ALL_METHODS {sorted(ALL_METHODS)} and the registry {sorted(METHODS)} differ")

__all__ = ["ALL_METHODS", "METHODS", "UNLEARNING_METHODS", "MethodContext", "get_method"]
