"""compute_saliency: the SalUn gradient accumulation, global threshold, hard and soft outputs."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from wsscl_fast import compute_saliency
from wsscl_fast.models import SmallCNN
from wsscl_fast.saliency import forget_gradient_scores, saliency_from_scores


@pytest.fixture
def model_and_forget():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, in_channels=1, width=4)
    g = torch.Generator().manual_seed(1)
    forget = TensorDataset(torch.randn(10, 1, 8, 8, generator=g), torch.randint(0, 3, (10,), generator=g))
    return model, forget


def test_scores_are_abs_of_summed_batch_gradients(model_and_forget):
    model, forget = model_and_forget
    scores = forget_gradient_scores(model, DataLoader(forget, batch_size=4))
    model.eval()
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for x, y in DataLoader(forget, batch_size=4):
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
        expected = [e + g for e, g in zip(expected, grads)]
    for s, e in zip(scores, expected):
        torch.testing.assert_close(s, e.abs())


def test_model_is_left_as_it_was(model_and_forget):
    model, forget = model_and_forget
    model.train()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(model.parameters())
    first.grad = torch.full_like(first, 3.0)
    compute_saliency(model, forget)
    assert model.training
    assert torch.equal(first.grad, torch.full_like(first, 3.0))
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_hard_mask_keeps_the_top_fraction(model_and_forget, ratio):
    model, forget = model_and_forget
    masks = compute_saliency(model, forget, ratio=ratio, mode="hard")
    assert [m.shape for m in masks] == [p.shape for p in model.parameters()]
    assert all(m.dtype == torch.bool for m in masks)
    kept = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    scores = torch.cat([s.flatten() for s in forget_gradient_scores(model, forget)])
    ties_at_zero = float((scores == 0).float().mean())
    if ratio <= 1 - ties_at_zero:
        assert kept == pytest.approx(ratio, abs=0.01)
    else:  # the threshold is 0 and every coordinate ties with it
        assert kept == 1.0


def test_soft_weights_are_one_on_the_mask_and_fractional_elsewhere(model_and_forget):
    model, forget = model_and_forget
    hard = compute_saliency(model, forget, ratio=0.3, mode="hard")
    soft = compute_saliency(model, forget, ratio=0.3, mode="soft")
    for h, s in zip(hard, soft):
        assert s.dtype == torch.float32
        assert torch.all(s[h] == 1)
        assert torch.all((s[~h] >= 0) & (s[~h] < 1))


def test_bad_arguments(model_and_forget):
    model, forget = model_and_forget
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]"):
        compute_saliency(model, forget, ratio=0.0)
    with pytest.raises(ValueError, match="mode must be 'soft' or 'hard'"):
        compute_saliency(model, forget, mode="medium")
    with pytest.raises(ValueError, match="the dataset is empty"):
        compute_saliency(model, TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="scores is empty"):
        saliency_from_scores([], 0.5)
