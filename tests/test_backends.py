"""Backend dispatch: argument > WSSCL_BACKEND > device default; forced choices never fall back;
and what ran is what gets reported (backends.recording)."""
import pytest
import torch

from wsscl_fast import backends, infonce_loss
from wsscl_fast.backends import recording, register, resolve

from helpers import ALL_BACKENDS, device_for


def test_cpp_extension_is_built():
    """Fails loudly (with the build error) when the C++ extension did not build or import."""
    assert backends.unavailable_reason("cpp", torch.device("cpu")) is None, backends.unavailable_reason(
        "cpp", torch.device("cpu"))
    assert hasattr(backends.cpp_ops(), "infonce_cpp")


for _name in ("triton", "cpp", "torch"):  # a test op that every backend implements
    register("op", _name, lambda name=_name: f"{name}-impl")

# (backend= argument, WSSCL_BACKEND, TRITON_INTERPRET=1, what runs on CPU tensors): written out,
# not derived, so that a change of the precedence rule fails here
RESOLUTION = [
    (None, None, False, "cpp"),  # the default a CPU user gets
    (None, None, True, "triton"),  # interpreted Triton only when asked for by TRITON_INTERPRET
    (None, "torch", False, "torch"),
    (None, "torch", True, "torch"),
    (None, "cpp", True, "cpp"),
    (None, "triton", True, "triton"),
    (None, "triton", False, RuntimeError),  # forced but unavailable: raises, never falls back
    ("torch", None, True, "torch"),
    ("cpp", None, False, "cpp"),
    ("torch", "cpp", False, "torch"),  # the argument beats the environment
    ("cpp", "torch", True, "cpp"),
    ("triton", "torch", True, "triton"),
    ("triton", "cpp", False, RuntimeError),
    (None, "nonsense", False, ValueError),
    ("nonsense", None, False, ValueError),
]


@pytest.mark.parametrize("argument,environment,interpret,expected", RESOLUTION)
def test_resolution_table(monkeypatch, argument, environment, interpret, expected):
    for name, value in (("WSSCL_BACKEND", environment), ("TRITON_INTERPRET", "1" if interpret else None)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    if isinstance(expected, type):
        with pytest.raises(expected, match="unavailable|must be one of"):
            resolve("op", torch.device("cpu"), backend=argument)
    else:
        assert resolve("op", torch.device("cpu"), backend=argument) == (expected, f"{expected}-impl")


def test_default_skips_backends_without_the_op(monkeypatch):
    monkeypatch.delenv("WSSCL_BACKEND", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert resolve("op", torch.device("cpu"), exclude=("triton", "cpp")) == ("torch", "torch-impl")


def test_forced_backend_without_the_op_raises_instead_of_falling_back(monkeypatch):
    monkeypatch.setenv("WSSCL_BACKEND", "cpp")
    with pytest.raises(NotImplementedError, match="op: backend 'cpp' does not implement"):
        resolve("op", torch.device("cpu"), exclude=("triton", "cpp"))


def test_unknown_backend_is_named(monkeypatch):
    monkeypatch.setenv("WSSCL_BACKEND", "cuda-magic")
    with pytest.raises(ValueError, match="cuda-magic.*WSSCL_BACKEND"):
        resolve("op", torch.device("cpu"))


def test_triton_reason_names_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = backends.unavailable_reason("triton", torch.device("cpu"))
    assert reason is not None and "TRITON_INTERPRET=1" in reason


def test_cpp_refuses_non_cpu_devices():
    assert "CPU tensors only" in backends.unavailable_reason("cpp", torch.device("meta"))


@pytest.mark.parametrize("chosen", ALL_BACKENDS)
def test_public_op_runs_the_backend_the_environment_names(monkeypatch, chosen):
    """The op runs (and recording() reports) the backend named by WSSCL_BACKEND, not the default."""
    device = device_for(chosen)
    a, p, r = (torch.randn(n, 4, device=device) for n in (2, 2, 3))
    monkeypatch.setenv("WSSCL_BACKEND", chosen)
    with recording() as used:
        infonce_loss(a, p, r)
    assert used == {"infonce_loss": [chosen]}


def test_recording_nests_and_ends():
    with recording() as outer:
        infonce_loss(torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 4), backend="torch")
        with recording() as inner:
            infonce_loss(torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 4), backend="cpp")
    infonce_loss(torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 4), backend="torch")
    assert inner == {"infonce_loss": ["cpp"]}
    assert outer == {"infonce_loss": ["cpp", "torch"]}
