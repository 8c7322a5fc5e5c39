"""infonce_loss / InfoNCELoss: the fused backends against the reference, the torch backend's dispatch, and the
bad-input paths. (The reference itself is tested against the naive formula in test_reference.py.)"""
import pytest
import torch

from helpers import FUSED_BACKENDS, TRITON_DEVICE, device_for
from wsscl_fast import InfoNCELoss, infonce_loss
from wsscl_fast.kernels import TARGET_ARCHS
from wsscl_fast.reference import infonce_loss_ref

# fp16/bf16 inputs are rounded to 8 (bf16) or 11 (fp16) mantissa bits, then accumulated in fp32:
# the loss and gradients are compared with the fp32 reference on the *rounded* inputs, so the
# only error left is the final rounding of the outputs to the input dtype: 2 ulps (eps, 2^-7 for
# bf16 and 2^-10 for fp16, is one ulp at 1). In fp32 and fp64 the error is the summation order
# of sums over up to D = 512 features or rows: D * u (u = eps / 2), with a 4x margin for the
# loss's log-sum-exp and normalisation. atol is relative to the largest reference value: near-zero
# gradient entries only carry the summation-order error of their larger neighbours.
_DEPTH = 512


def _tolerance(dtype):
    eps = torch.finfo(dtype).eps
    if dtype in (torch.float16, torch.bfloat16):
        return dict(rtol=2 * eps, atol=eps)
    return dict(rtol=4 * _DEPTH * eps / 2, atol=_DEPTH * eps / 2)


TOLERANCE = {dtype: _tolerance(dtype) for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)}


def assert_close_scaled(actual, expected, dtype, what):
    tol = TOLERANCE[dtype]
    scale = max(1e-30, float(expected.detach().abs().max()))
    torch.testing.assert_close(actual.float(), expected.float(), rtol=tol["rtol"], atol=tol["atol"] * scale,
                               msg=lambda m: f"{what}: {m}")



def _inputs(n, m, d, dtype, seed=0, scale=1.0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(k, d, generator=g)).to(device, dtype).requires_grad_(True) for k in (n, n, m)]


def _check_against_reference(backend, shape, dtype, tau, normalize, scale=1.0):
    inputs = _inputs(*shape, dtype, scale=scale, device=device_for(backend))
    reference_inputs = [x.detach().cpu().to(torch.float32 if dtype != torch.float64 else dtype).requires_grad_(True)
                        for x in inputs]
    loss = infonce_loss(*inputs, temperature=tau, normalize=normalize, backend=backend)
    expected = infonce_loss_ref(*reference_inputs, temperature=tau, normalize=normalize)
    grads = torch.autograd.grad(loss, inputs)
    expected_grads = torch.autograd.grad(expected, reference_inputs)
    assert loss.dtype == dtype
    assert_close_scaled(loss.cpu(), expected, dtype, "loss")
    for name, g, e in zip("APR", grads, expected_grads):
        assert g.dtype == dtype, name
        assert_close_scaled(g.cpu(), e, dtype, f"d{name}")


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("shape", [(1, 1, 3), (37, 1001, 129), (5, 300, 2048), (64, 17, 8)])
@pytest.mark.parametrize("normalize", [True, False])
def test_fp32_matches_reference_on_odd_shapes(backend, shape, normalize):
    _check_against_reference(backend, shape, torch.float32, 0.5, normalize)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0, 2.0])
def test_temperatures(backend, tau):
    _check_against_reference(backend, (19, 77, 33), torch.float32, tau, True)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(backend, dtype):
    if backend == "triton" and dtype == torch.float64:
        with pytest.raises(NotImplementedError, match="backend 'triton' does not implement this op"):
            infonce_loss(*_inputs(3, 4, 5, dtype), backend=backend)
        return
    _check_against_reference(backend, (13, 70, 24), dtype, 0.5, True)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_large_norms_do_not_overflow(backend):
    # unnormalised features of norm ~1e3 at tau = 0.05: logits ~ 1e7, exp would overflow without the LSE shift
    inputs = _inputs(9, 40, 16, torch.float32, scale=300.0, device=device_for(backend))
    loss = infonce_loss(*inputs, temperature=0.05, normalize=False, backend=backend)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(x.grad).all() for x in inputs)
    _check_against_reference(backend, (9, 40, 16), torch.float32, 0.05, False, scale=300.0)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_non_contiguous_inputs(backend):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(40, 64, generator=g).to(device_for(backend))
    a, p, r = base[:10, ::2], base[10:20, 1::2], base[20:, ::2].t().contiguous().t()
    torch.testing.assert_close(infonce_loss(a, p, r, backend=backend).cpu(), infonce_loss_ref(a, p, r).cpu(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_gradient_only_for_some_inputs(backend):
    a, p, r = _inputs(4, 9, 6, torch.float32, device=device_for(backend))
    r = r.detach()
    loss = infonce_loss(a, p, r, backend=backend)
    ga, = torch.autograd.grad(loss, [a])
    ea, = torch.autograd.grad(infonce_loss_ref(a, p, r), [a])
    torch.testing.assert_close(ga, ea, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_backend_is_the_reference(dtype):
    """backend="torch" dispatches to the reference, unchanged: the same loss and gradients, bit for bit."""
    inputs = _inputs(6, 11, 5, dtype)
    twins = [x.detach().clone().requires_grad_(True) for x in inputs]
    loss, expected = infonce_loss(*inputs, 0.3, backend="torch"), infonce_loss_ref(*twins, temperature=0.3)
    assert torch.equal(loss, expected)
    for g, e in zip(torch.autograd.grad(loss, inputs), torch.autograd.grad(expected, twins)):
        assert torch.equal(g, e)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_fused_double_backward_raises(backend):
    a, p, r = _inputs(3, 5, 4, torch.float32, device=device_for(backend))
    loss = infonce_loss(a, p, r, backend=backend)
    with pytest.raises(RuntimeError, match="not twice differentiable"):
        torch.autograd.grad(loss, [a], create_graph=True)


def test_module_wrapper_is_a_drop_in():
    module = InfoNCELoss(temperature=0.3)
    a, p, r = _inputs(4, 9, 6, torch.float32)
    torch.testing.assert_close(module(a, p, r), infonce_loss_ref(a, p, r, 0.3))
    assert "temperature=0.3" in repr(module)


# ----------------------------------------------------------------------------- bad input
def _good():
    return [t.detach() for t in _inputs(4, 6, 8, torch.float32)]


@pytest.mark.parametrize("change, error, message", [
    (lambda a, p, r: (a[:, :5], p, r), ValueError, "positives must have 5 features"),
    (lambda a, p, r: (a, p[:3], r), ValueError, "one row per anchor"),
    (lambda a, p, r: (a, p, r[:, :3]), ValueError, "negatives must have 8 features"),
    (lambda a, p, r: (a[0], p, r), ValueError, "anchors must be 2-D"),
    (lambda a, p, r: (a, p.double(), r), TypeError, "positives has dtype torch.float64"),
    (lambda a, p, r: (a, p, r.long()), TypeError, "negatives must be float16"),
    (lambda a, p, r: (a, p, r[:0]), ValueError, "negatives is empty"),
    (lambda a, p, r: (a[:0], p[:0], r), ValueError, "anchors is empty"),
    (lambda a, p, r: (a, p, r.to("meta")), ValueError, "negatives is on meta"),
    (lambda a, p, r: (a, p.index_fill(0, torch.tensor([1]), float("nan")), r), ValueError, "positives contains NaN"),
    (lambda a, p, r: (a, p, r.index_fill(0, torch.tensor([0]), float("inf"))), ValueError, "negatives contains NaN or inf"),
])
def test_bad_inputs_name_the_argument(change, error, message):
    with pytest.raises(error, match=message):
        infonce_loss(*change(*_good()))


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature(tau):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        infonce_loss(*_good(), temperature=tau)
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=tau)


def test_inputs_are_not_modified():
    inputs = _good()
    copies = [x.clone() for x in inputs]
    for backend in ("torch", "cpp"):
        infonce_loss(*inputs, backend=backend)
    triton_inputs = [x.to(TRITON_DEVICE) for x in inputs]
    infonce_loss(*triton_inputs, backend="triton")
    assert all(torch.equal(x.cpu(), c) for x, c in zip(triton_inputs, copies))
    assert all(torch.equal(x, c) for x, c in zip(inputs, copies))


@pytest.mark.cuda  # the benchmark shapes are too slow for the interpreter
@pytest.mark.parametrize("shape", [(256, 256, 512), (1024, 16384, 256)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_on_benchmark_shapes(shape, dtype):
    _check_against_reference("triton", shape, dtype, 0.5, True)


# ----------------------------------------------------------------------------- the GPU launch table
def _triton_loss_and_grads(inputs, tau, normalize, **launch):
    from wsscl_fast.kernels.infonce import infonce_loss_triton
    loss = infonce_loss_triton(*inputs, tau, normalize, launch.get("tiles"), launch.get("splits", 0))
    return [loss, *torch.autograd.grad(loss, inputs)]


@pytest.mark.parametrize("precision", ["ieee", "tf32", "bf16"])
@pytest.mark.parametrize("arch", TARGET_ARCHS)
@pytest.mark.parametrize("normalize", [True, False])
def test_gpu_table_rows_match_reference(precision, arch, normalize):
    """The tiles a GPU launch uses (D sliced in a loop, several D chunks and M splits), run
    under the interpreter on fp32 inputs: D = 300 is no multiple of any block."""
    from wsscl_fast.kernels.infonce import LAUNCH_TABLE
    tiles = LAUNCH_TABLE[(arch, precision, 128)]
    inputs = _inputs(70, 150, 300, torch.float32, device=TRITON_DEVICE)
    reference = [x.detach().cpu().requires_grad_(True) for x in inputs]
    expected = infonce_loss_ref(*reference, temperature=0.3, normalize=normalize)
    expected = [expected, *torch.autograd.grad(expected, reference)]
    actual = _triton_loss_and_grads(inputs, 0.3, normalize, tiles=tiles, splits=2)
    for name, got, want in zip(["loss", "dA", "dP", "dR"], actual, expected):
        assert_close_scaled(got.cpu(), want, torch.float32, name)


@pytest.mark.parametrize("splits", [1, 2, 3, 7])
def test_splits_of_the_negatives_give_the_same_loss_and_gradients(splits):
    inputs = _inputs(9, 200, 24, torch.float32, device=TRITON_DEVICE)
    from wsscl_fast.kernels.infonce import Tiles
    tiles = Tiles(16, 16, 16, 16, num_warps=4, num_stages=1)
    one = _triton_loss_and_grads(inputs, 0.5, True, tiles=tiles, splits=1)
    many = _triton_loss_and_grads(inputs, 0.5, True, tiles=tiles, splits=splits)
    for a, b in zip(one, many):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_triton_results_are_deterministic():
    inputs = _inputs(33, 90, 40, torch.float32, device=TRITON_DEVICE)
    from wsscl_fast.kernels.infonce import Tiles
    tiles = Tiles(16, 32, 16, 16, num_warps=4, num_stages=1)
    first = _triton_loss_and_grads(inputs, 0.5, True, tiles=tiles, splits=3)
    second = _triton_loss_and_grads(inputs, 0.5, True, tiles=tiles, splits=3)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_triton_takes_any_feature_size():
    # no limit on D any more: 4100 features (the table's largest D slice is 128)
    _check_against_reference("triton", (3, 20, 4100), torch.float32, 0.5, True)


def test_table_covers_every_feature_size():
    from wsscl_fast.kernels.infonce import ARCHS, LAUNCH_TABLE, PRECISIONS, feature_bucket
    for d in range(1, 4097):
        for arch in ARCHS:
            for precision in PRECISIONS:
                tiles = LAUNCH_TABLE[(arch, precision, feature_bucket(d))]
                assert tiles.block_k <= 64 and tiles.block_do <= 128, (d, arch, precision)
