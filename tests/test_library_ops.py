"""The ops registered with torch.library (``torch.ops.wsscl_fast.*``): ``opcheck`` (schema, fake
tensor, autograd registration, AOT dispatch) of the C++ ops and of the Triton InfoNCE ops (under
the interpreter without a GPU), and ``torch.compile(fullgraph=True)`` through the public
functions, against the reference."""
import pytest
import torch
from torch.library import opcheck

from wsscl_fast import backends
from wsscl_fast.ops import infonce_loss, masked_adamw_step, masked_sgd_step, saliency_from_scores
from wsscl_fast.reference import infonce_loss_ref, masked_adamw_step_ref, masked_sgd_step_ref, saliency_from_scores_ref
from wsscl_fast.saliency_storage import keep_count, pack_mask, unpack_mask

needs_cpp = pytest.mark.skipif(not backends.cpp_extension_loaded(), reason="the C++ extension did not build")

SHAPES = [(5,), (3, 7), (2, 3, 3), (4, 4)]  # partial last bytes of the packed masks, and a full one
FP32_TOL = dict(rtol=1e-5, atol=1e-6)  # fp32, a few ulps of reordered sums


def ops():
    return backends.cpp_ops()


@pytest.fixture(autouse=True)
def fresh_compiles():
    """Every compile traces the code as it is now: no graph from the on-disk caches, which do not
    key on a custom op's Python autograd formula, and no Dynamo cache from an earlier test."""
    torch._dynamo.reset()
    with torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False):
        yield


def _features(*rows, d=9, requires_grad=False):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(n, d, generator=gen).requires_grad_(requires_grad) for n in rows]


@needs_cpp
@pytest.mark.parametrize("need_grad", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_infonce(need_grad, dtype):
    a, p, r = (x.to(dtype).requires_grad_(need_grad) for x in _features(6, 6, 11))
    opcheck(ops().infonce_cpp.default, (a, p, r, 0.5, True, need_grad, 0))


def _step_inputs(storage: str):
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(s, generator=gen) for s in SHAPES]
    grads = [torch.randn(s, generator=gen) for s in SHAPES]
    if storage == "bits":
        masks = [torch.rand(s, generator=gen) > 0.5 for s in SHAPES]
        saliencies = [pack_mask(m) for m in masks]
    else:
        saliencies = [torch.rand(s, generator=gen) for s in SHAPES]
    return params, grads, saliencies


@needs_cpp
@pytest.mark.parametrize("storage", ["dense", "bits"])
def test_opcheck_masked_sgd(storage):
    params, grads, saliencies = _step_inputs(storage)
    buffers = [torch.zeros_like(p) for p in params]
    opcheck(ops().masked_sgd_cpp.default, (params, grads, saliencies, buffers, 0.1, 0.9, 1e-3, True, storage))


@needs_cpp
def test_opcheck_masked_adamw():
    params, grads, saliencies = _step_inputs("dense")
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    opcheck(ops().masked_adamw_cpp.default, (params, grads, saliencies, m, v, [1, 2, 3, 4], 1e-2, 0.9, 0.99, 1e-8, 0.05,
                                             "dense"))


@needs_cpp
@pytest.mark.parametrize("hard,storage", [(True, "dense"), (True, "bits"), (False, "dense"), (False, "uint8")])
def test_opcheck_saliency(hard, storage):
    scores = [torch.rand(s, generator=torch.Generator().manual_seed(2)) for s in SHAPES]
    opcheck(ops().saliency_threshold_cpp.default, (scores, 7))
    threshold = ops().saliency_threshold_cpp(scores, 7)
    opcheck(ops().saliency_emit_cpp.default, (scores, threshold, hard, storage))


@pytest.mark.parametrize("backend", [pytest.param("cpp", marks=needs_cpp), "triton"])
def test_compiled_infonce_matches_the_reference_forward_and_backward(backend):
    if backend == "triton":
        pytest.importorskip("triton")
    from helpers import device_for

    compiled = torch.compile(lambda a, p, r: infonce_loss(a, p, r, 0.3, backend=backend), fullgraph=True)
    ours = [x.detach().to(device_for(backend)).requires_grad_(True) for x in _features(7, 7, 13)]
    theirs = _features(7, 7, 13, requires_grad=True)
    loss = compiled(*ours)
    (2.5 * loss).backward()  # a grad_output other than 1 reaches the registered backward
    expected = infonce_loss_ref(*theirs, 0.3)
    (2.5 * expected).backward()
    torch.testing.assert_close(loss.cpu(), expected, **FP32_TOL)
    for x, y in zip(ours, theirs):
        torch.testing.assert_close(x.grad.cpu(), y.grad, **FP32_TOL)


@needs_cpp
def test_compiled_infonce_keeps_the_nan_check():
    compiled = torch.compile(lambda a, p, r: infonce_loss(a, p, r, backend="cpp"), fullgraph=True)
    a, p, r = _features(4, 4, 5)
    a[1, 2] = float("nan")
    with pytest.raises(RuntimeError, match="anchors contains NaN"):
        compiled(a, p, r)


@needs_cpp
def test_compiled_masked_steps_match_the_reference():
    params, grads, saliencies = _step_inputs("dense")
    ref_params = [p.clone() for p in params]
    buffers = [torch.zeros_like(p) for p in params]
    ref_buffers = [b.clone() for b in buffers]
    sgd = torch.compile(lambda: masked_sgd_step(params, grads, saliencies, buffers, lr=0.1, momentum=0.9,
                                                backend="cpp"), fullgraph=True)
    sgd()
    for p, g, w, b in zip(ref_params, grads, saliencies, ref_buffers):
        masked_sgd_step_ref(p, g, w, b, lr=0.1, momentum=0.9)
    for ours, theirs in zip(params + buffers, ref_params + ref_buffers):
        torch.testing.assert_close(ours, theirs, **FP32_TOL)

    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    ref_m, ref_v = [x.clone() for x in m], [x.clone() for x in v]
    adamw = torch.compile(lambda: masked_adamw_step(params, grads, saliencies, m, v, [1, 1, 1, 1], lr=1e-2,
                                                    backend="cpp"), fullgraph=True)
    adamw()
    for p, g, w, mm, vv in zip(ref_params, grads, saliencies, ref_m, ref_v):
        masked_adamw_step_ref(p, g, w, mm, vv, 1, lr=1e-2)
    for ours, theirs in zip(params + m + v, ref_params + ref_m + ref_v):
        torch.testing.assert_close(ours, theirs, **FP32_TOL)


@needs_cpp
def test_compiled_saliency_matches_the_reference():
    scores = [torch.rand(s, generator=torch.Generator().manual_seed(3)) for s in SHAPES]
    compiled = torch.compile(lambda s: saliency_from_scores(s, 0.4, "hard", backend="cpp", saliency_storage="bits"),
                             fullgraph=True)
    packed = compiled(scores)
    for ours, theirs in zip(packed, saliency_from_scores_ref(scores, 0.4, "hard", "bits")):
        assert torch.equal(ours, theirs)
    kept = sum(int(unpack_mask(bits, s.shape).sum()) for bits, s in zip(packed, scores))
    assert kept == keep_count(sum(s.numel() for s in scores), 0.4)  # distinct random scores: no ties at t


@pytest.mark.parametrize("normalize", [True, False])
def test_opcheck_triton_infonce(normalize):
    """The Triton forward and backward ops (tiles small enough for the interpreter, 3 splits of M)."""
    pytest.importorskip("triton")
    from helpers import TRITON_DEVICE
    from wsscl_fast.kernels.infonce import infonce_triton_bwd, infonce_triton_fwd

    a, p, r = (x.to(TRITON_DEVICE).requires_grad_(True) for x in _features(5, 5, 40, d=12))
    tiles, splits = [16, 16, 16, 16, 4, 1], 3
    opcheck(infonce_triton_fwd, (a, p, r, 0.4, normalize, tiles, splits))
    _, *stats = infonce_triton_fwd(a.detach(), p.detach(), r.detach(), 0.4, normalize, tiles, splits)
    grad = torch.tensor(1.5, device=TRITON_DEVICE)
    opcheck(infonce_triton_bwd, (grad, a.detach(), p.detach(), r.detach(), *stats, 0.4, normalize, tiles, splits))
