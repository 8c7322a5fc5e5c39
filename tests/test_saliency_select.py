"""Saliency selection on the fused backends: radix-select threshold against torch.kthvalue,
mask and weight emission (dense, packed bits, uint8) against the reference."""
import pytest
import torch

from helpers import ALL_BACKENDS, FUSED_BACKENDS, device_for
from wsscl_fast.ops import saliency_from_scores
from wsscl_fast.reference import saliency_from_scores_ref
from wsscl_fast.saliency_storage import dequantize_saliency, keep_count, pack_mask, quantize_saliency, unpack_mask

MIXED_SHAPES = [(1,), (1023,), (64, 3, 3, 3), (7,), (3, 5, 7), (8193,)]



def _threshold(backend, scores, k):
    if backend == "cpp":
        from wsscl_fast.backends import cpp_ops

        return cpp_ops().saliency_threshold_cpp([s.cpu() for s in scores], k)
    from wsscl_fast.kernels.saliency_select import saliency_threshold_triton

    return saliency_threshold_triton(scores, k).cpu()


def _kth_largest(scores, k):
    flat = torch.cat([s.reshape(-1).cpu() for s in scores])
    return torch.kthvalue(flat, flat.numel() - k + 1).values


def _score_sets():
    g = torch.Generator().manual_seed(0)
    yield "abs normal", [torch.randn(s, generator=g).abs() for s in MIXED_SHAPES]
    yield "signed with ties", [torch.randint(-3, 4, s, generator=g).float() for s in MIXED_SHAPES]
    yield "mostly zeros", [torch.where(torch.rand(s, generator=g) < 0.9, 0.0, torch.rand(s, generator=g))
                           for s in MIXED_SHAPES]
    yield "one element", [torch.tensor([2.5])]
    yield "tiny and huge", [torch.tensor([1e-38, 3e38, -0.0, 0.0, 1.401298e-45, -3e38, 7.0])]


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("name,scores", list(_score_sets()), ids=[n for n, _ in _score_sets()])
def test_threshold_equals_kthvalue_ties_included(backend, name, scores):
    scores = [s.to(device_for(backend)) for s in scores]
    n = sum(s.numel() for s in scores)
    for k in sorted({1, 2, n // 3 + 1, n // 2, n - 1, n} & set(range(1, n + 1))):
        assert torch.equal(_threshold(backend, scores, k), _kth_largest(scores, k)), f"k={k} of n={n}"


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_threshold_refuses_k_out_of_range(backend):
    scores = [torch.rand(10).to(device_for(backend))]
    for k in (0, 11):
        with pytest.raises((ValueError, RuntimeError), match="k must lie in"):
            _threshold(backend, scores, k)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("mode,storage", [("hard", "dense"), ("hard", "bits"), ("soft", "dense"), ("soft", "uint8")])
@pytest.mark.parametrize("ratio", [0.05, 0.5, 1.0])
def test_emission_matches_the_reference(backend, mode, storage, ratio):
    g = torch.Generator().manual_seed(1)
    scores = [torch.randn(s, generator=g).abs().to(device_for(backend)) for s in MIXED_SHAPES]
    ours = saliency_from_scores(scores, ratio, mode, backend=backend, saliency_storage=storage)
    expected = saliency_from_scores_ref([s.cpu() for s in scores], ratio, mode, storage=storage)
    for a, b in zip(ours, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a.cpu(), b)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_hard_mask_keeps_exactly_the_top_k_without_ties(backend):
    scores = [torch.randperm(5000, generator=torch.Generator().manual_seed(3)).float().reshape(50, 100)]
    scores = [s.to(device_for(backend)) for s in scores]
    mask = saliency_from_scores(scores, 0.1, "hard", backend=backend, saliency_storage="bits")[0]
    assert int(unpack_mask(mask.cpu(), (50, 100)).sum()) == keep_count(5000, 0.1) == 500


def test_storage_formats_round_trip():
    g = torch.Generator().manual_seed(4)
    for n in (1, 7, 8, 9, 1023):
        mask = torch.rand(n, generator=g) < 0.5
        bits = pack_mask(mask)
        assert bits.shape == ((n + 7) // 8,) and bits.dtype == torch.uint8
        assert torch.equal(unpack_mask(bits, (n,)), mask)
    assert pack_mask(torch.tensor([True, False, False, True])).item() == 0b1001
    w = torch.tensor([0.0, 1e-6, 0.5 / 255, 0.3, 1.0])
    q = quantize_saliency(w)
    assert q.tolist() == [0, 1, 1, 77, 255]  # nonzero weights stay nonzero
    assert torch.allclose(dequantize_saliency(q)[2:], w[2:], atol=0.5 / 255 + 1e-7)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bad_selection_arguments(backend):
    scores = [torch.rand(10).to(device_for(backend))]
    with pytest.raises(ValueError, match="storage must be one of"):
        saliency_from_scores(scores, 0.5, "soft", backend=backend, saliency_storage="bits")
    with pytest.raises(ValueError, match="storage must be one of"):
        saliency_from_scores(scores, 0.5, "hard", backend=backend, saliency_storage="uint8")
    with pytest.raises(ValueError, match=r"scores\[0\] contains NaN"):
        saliency_from_scores([torch.tensor([1.0, float("nan")]).to(device_for(backend))], 0.5, backend=backend)
