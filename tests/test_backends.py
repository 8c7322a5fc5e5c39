"""Backend dispatch: argument > WSSCL_BACKEND > device default; forced choices never fall back."""
import pytest
import torch

from wsscl_fast import backends, infonce_loss
from wsscl_fast.backends import resolve


def test_cpp_extension_is_built():
    """Fails loudly (with the build error) when the C++ extension did not build or import."""
    assert backends.unavailable_reason("cpp", torch.device("cpu")) is None, backends.unavailable_reason(
        "cpp", torch.device("cpu"))
    assert hasattr(backends.cpp_extension(), "infonce_forward")


IMPLS = {"torch": lambda: "torch-impl", "cpp": lambda: "cpp-impl"}


def test_default_prefers_cpp_on_cpu(monkeypatch):
    monkeypatch.delenv("WSSCL_BACKEND", raising=False)
    assert resolve("op", torch.device("cpu"), IMPLS) == ("cpp", "cpp-impl")
    assert resolve("op", torch.device("cpu"), {"torch": IMPLS["torch"]}) == ("torch", "torch-impl")


def test_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("WSSCL_BACKEND", "cpp")
    assert resolve("op", torch.device("cpu"), IMPLS)[0] == "cpp"
    assert resolve("op", torch.device("cpu"), IMPLS, backend="torch")[0] == "torch"


def test_forced_backend_without_the_op_raises_instead_of_falling_back(monkeypatch):
    monkeypatch.setenv("WSSCL_BACKEND", "cpp")
    with pytest.raises(NotImplementedError, match="op: backend 'cpp' does not implement"):
        resolve("op", torch.device("cpu"), {"torch": IMPLS["torch"]})


def test_unknown_backend_is_named(monkeypatch):
    monkeypatch.setenv("WSSCL_BACKEND", "cuda-magic")
    with pytest.raises(ValueError, match="cuda-magic.*WSSCL_BACKEND"):
        resolve("op", torch.device("cpu"), IMPLS)


def test_triton_needs_cuda_or_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = backends.unavailable_reason("triton", torch.device("cpu"))
    assert reason is not None and "TRITON_INTERPRET=1" in reason
    with pytest.raises(RuntimeError, match="backend 'triton' is unavailable"):
        resolve("op", torch.device("cpu"), {"triton": lambda: None}, backend="triton")


def test_cpp_refuses_non_cpu_devices():
    assert "CPU tensors only" in backends.unavailable_reason("cpp", torch.device("meta"))


def test_public_op_honours_the_environment(monkeypatch):
    a, p, r = torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 4)
    monkeypatch.setenv("WSSCL_BACKEND", "torch")
    torch_value = infonce_loss(a, p, r)
    monkeypatch.setenv("WSSCL_BACKEND", "cpp")
    torch.testing.assert_close(infonce_loss(a, p, r), torch_value)
