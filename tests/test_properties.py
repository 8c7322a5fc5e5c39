"""Property-based tests: the fused backends (Triton under the interpreter or on CUDA, and C++)
against the reference on random shapes, dtypes, temperatures, masks and hyperparameters.
At least 200 cases per op and backend (``max_examples``)."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import FUSED_BACKENDS, device_for
from wsscl_fast import MaskedAdamW, MaskedSGD, infonce_loss
from wsscl_fast.reference import infonce_loss_ref, masked_adamw_step_ref, masked_sgd_step_ref
from test_infonce import TOLERANCE, assert_close_scaled

CASES = settings(max_examples=200, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = {"cpp": [torch.float32, torch.float64, torch.bfloat16], "triton": [torch.float32, torch.float16, torch.bfloat16]}


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_infonce_matches_reference(backend):
    @CASES
    @given(n=st.integers(1, 9), m=st.integers(1, 70), d=st.integers(1, 40), dtype_index=st.integers(0, 2),
           temperature=st.floats(0.05, 2.0), normalize=st.booleans(), scale=st.floats(0.1, 4.0),
           seed=st.integers(0, 2**31 - 1))
    def check(n, m, d, dtype_index, temperature, normalize, scale, seed):
        dtype = DTYPES[backend][dtype_index]
        g = torch.Generator().manual_seed(seed)
        inputs = [(scale * torch.randn(k, d, generator=g)).to(device_for(backend), dtype).requires_grad_(True)
                  for k in (n, n, m)]
        exact = torch.float64 if dtype == torch.float64 else torch.float32
        reference_inputs = [x.detach().cpu().to(exact).requires_grad_(True) for x in inputs]
        loss = infonce_loss(*inputs, temperature=temperature, normalize=normalize, backend=backend)
        expected = infonce_loss_ref(*reference_inputs, temperature=temperature, normalize=normalize)
        assert_close_scaled(loss.cpu(), expected, dtype, "loss")
        # |dL/dx_row| <= 2 / (temperature n |x_row|) with normalisation (2 |x|max / (temperature n)
        # without): the floor of the absolute tolerance where the exact gradient is ~0 (e.g. d = 1)
        rows = torch.cat([x.detach() for x in reference_inputs]).norm(dim=1)
        bound = 2 / (temperature * n) * (1 / rows.min().clamp_min(1e-6) if normalize else rows.max())
        for name, got, want in zip("APR", torch.autograd.grad(loss, inputs), torch.autograd.grad(expected, reference_inputs)):
            tol = TOLERANCE[dtype]
            torch.testing.assert_close(got.cpu().to(exact), want, rtol=tol["rtol"],
                                       atol=tol["atol"] * max(float(want.abs().max()), float(bound)),
                                       msg=lambda m: f"d{name}: {m}")

    check()


def _saliency(kind: str, shape, generator):
    if kind == "bool":
        return torch.rand(shape, generator=generator) < 0.5
    values = torch.rand(shape, generator=generator)
    values[torch.rand(shape, generator=generator) < 0.3] = 0.0  # exact zeros must freeze
    values[torch.rand(shape, generator=generator) < 0.2] = 1.0
    return values


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_masked_steps_match_reference(backend):
    @CASES
    @given(shapes=st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=3), min_size=1, max_size=5),
           mask_kind=st.sampled_from(["bool", "soft"]), adamw=st.booleans(), lr=st.floats(1e-4, 0.5),
           momentum=st.sampled_from([0.0, 0.5, 0.9]), weight_decay=st.sampled_from([0.0, 5e-4, 0.1]),
           nesterov=st.booleans(), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999),
           steps=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
    def check(shapes, mask_kind, adamw, lr, momentum, weight_decay, nesterov, beta1, beta2, steps, seed):
        g = torch.Generator().manual_seed(seed)
        device = device_for(backend)
        start = [torch.randn(s, generator=g) for s in shapes]
        saliency = [_saliency(mask_kind, s, g) for s in shapes]
        grads = [[torch.randn(s, generator=g) for s in shapes] for _ in range(steps)]
        params = [p.clone().to(device).requires_grad_(True) for p in start]
        if adamw:
            hyper = dict(lr=lr, betas=(beta1, beta2), eps=1e-8, weight_decay=weight_decay)
            optimizer = MaskedAdamW(params, [s.to(device) for s in saliency], backend=backend, **hyper)
        else:
            hyper = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov and momentum > 0)
            optimizer = MaskedSGD(params, [s.to(device) for s in saliency], backend=backend, **hyper)
        expected = [p.clone() for p in start]
        buffers = [None] * len(start)
        moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in start]
        for k, step_grads in enumerate(grads, start=1):
            for p, grad in zip(params, step_grads):
                p.grad = grad.to(device)
            optimizer.step()
            for i, grad in enumerate(step_grads):
                if adamw:
                    masked_adamw_step_ref(expected[i], grad, saliency[i], *moments[i], k, lr=lr, beta1=beta1,
                                          beta2=beta2, eps=1e-8, weight_decay=weight_decay)
                else:
                    buffers[i] = masked_sgd_step_ref(expected[i], grad, saliency[i], buffers[i], **hyper)
        for got, want, s, p0 in zip(params, expected, saliency, start):
            torch.testing.assert_close(got.detach().cpu(), want, rtol=1e-5, atol=1e-6)
            frozen = s == 0
            assert torch.equal(got.detach().cpu()[frozen], p0[frozen]), "a zero-saliency coordinate moved"

    check()
