"""Backend choice for every fused op: ``triton``, ``cpp`` or ``torch`` (the reference).

Order of precedence: the ``backend=`` argument, then the ``WSSCL_BACKEND`` environment
variable, then the device default. The device default is the first *available* backend
that implements the op, in the order triton (CUDA tensors, or CPU tensors when
``TRITON_INTERPRET=1``), cpp (CPU tensors, when the extension is built), torch.
A forced backend that is unavailable, or that lacks the op, raises: it never falls back.

Every op module (``wsscl_fast/ops/``) declares its implementations here once, with
:func:`register`; :func:`resolve` picks one. Loaders are called only when chosen, so that
triton and the C++ extension stay optional.
"""
from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

BACKENDS = ("triton", "cpp", "torch")
ENV_VAR = "WSSCL_BACKEND"

_cpp_module = None
_cpp_error: str | None = None
try:
    from . import _C as _cpp_module
except ImportError as exc:  # the package must import without its C++ extension
    _cpp_error = f"the C++ extension wsscl_fast._C did not import ({exc}); rebuild with `pip install --no-build-isolation -e .`"


_recorders: list[dict[str, list[str]]] = []  #: the open recording() blocks


@contextmanager
def recording() -> Iterator[dict[str, list[str]]]:
    """Collect, for every op resolved inside the block, the backends that ran it:
    ``{op: [backend, ...]}`` (sorted, usually one). What records and ``result.info`` report."""
    used: dict[str, list[str]] = {}
    _recorders.append(used)
    try:
        yield used
    finally:
        _recorders.remove(used)


def _note(op: str, name: str) -> None:
    for used in _recorders:
        if name not in used.setdefault(op, []):
            used[op] = sorted([*used[op], name])


def cpp_extension_loaded() -> bool:
    """True when ``wsscl_fast._C`` imported, i.e. its ops are registered in ``torch.ops.wsscl_fast``."""
    return _cpp_module is not None


def cpp_ops():
    """``torch.ops.wsscl_fast``, the ops the C++ extension registered (``csrc/registration.cpp``);
    raises with the build/import error when the extension did not load."""
    if _cpp_module is None:
        raise RuntimeError(_cpp_error)
    return torch.ops.wsscl_fast


def triton_interpreted() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _triton_status(device: torch.device) -> str | None:
    """None when Triton can run on ``device``, otherwise why not."""
    if importlib.util.find_spec("triton") is None:
        return "the triton package is not installed"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and triton_interpreted():
        return None
    return f"triton needs CUDA tensors, or TRITON_INTERPRET=1 for CPU tensors (got {device.type})"


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """None when ``backend`` can run on ``device``, otherwise a sentence saying why not."""
    if backend == "torch":
        return None
    if backend == "cpp":
        if device.type != "cpu":
            return f"the cpp backend runs on CPU tensors only (got {device.type})"
        return _cpp_error
    if backend == "triton":
        return _triton_status(device)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def check_forced(backend: str | None, device: torch.device) -> str | None:
    """The forced backend (``backend``, else ``WSSCL_BACKEND``), refused up front when unknown or
    unavailable on ``device``, so that a run never starts (or records) a choice it cannot honour."""
    forced = backend or os.environ.get(ENV_VAR) or None
    if forced is None:
        return None
    if forced not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {forced!r} (from {'backend=' if backend else ENV_VAR})")
    reason = unavailable_reason(forced, device)
    if reason is not None:
        raise RuntimeError(f"backend {forced!r} is unavailable: {reason}")
    return forced


_LOADERS: dict[str, dict[str, Callable[[], Callable]]] = {}  #: op -> backend -> loader of its function


def register(op: str, backend: str, loader: Callable[[], Callable]) -> None:
    """Declare that ``backend`` implements ``op``: ``loader()`` imports and returns the function."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    _LOADERS.setdefault(op, {})[backend] = loader


def implemented_by(op: str) -> tuple[str, ...]:
    """The backends registered for ``op``, in order of preference."""
    return tuple(name for name in BACKENDS if name in _LOADERS.get(op, {}))


def resolve(op: str, device: torch.device, backend: str | None = None, exclude: tuple[str, ...] = ()):
    """Return ``(name, function)`` of the registered implementation of ``op`` to run on ``device``.
    ``exclude`` drops backends that cannot take these inputs (e.g. triton for float64)."""
    implementations = {name: loader for name, loader in _LOADERS.get(op, {}).items() if name not in exclude}
    try:
        forced = check_forced(backend, device)
    except RuntimeError as exc:
        raise RuntimeError(f"{op}: {exc}") from None
    if forced is not None:
        if forced not in implementations:
            raise NotImplementedError(f"{op}: backend {forced!r} does not implement this op (for these inputs) yet")
        _note(op, forced)
        return forced, implementations[forced]()
    for name in BACKENDS:
        if name in implementations and unavailable_reason(name, device) is None:
            _note(op, name)
            return name, implementations[name]()
    raise RuntimeError(f"{op}: no backend can run on {device}")
