"""Metrics on hand-made cases, including an SVC membership-inference case with a known answer."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from wsscl_fast.metrics import avg_gap, evaluate_unlearning, mia_efficacy, predict_split


def test_mia_separable_case_has_known_answer():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.95, 1.0, 200)  # training samples: confident
    nonmembers = rng.uniform(0.0, 0.4, 200)  # unseen samples: unsure
    assert mia_efficacy(members, nonmembers, rng.uniform(0.0, 0.3, 50)) == 100.0  # forgotten: look unseen
    assert mia_efficacy(members, nonmembers, rng.uniform(0.97, 1.0, 50)) == 0.0  # still look like members
    half = np.concatenate([rng.uniform(0.0, 0.3, 25), rng.uniform(0.97, 1.0, 25)])
    assert mia_efficacy(members, nonmembers, half) == 50.0


def test_mia_refuses_empty_sets():
    with pytest.raises(ValueError, match="non-empty"):
        mia_efficacy(np.ones(3), np.zeros(0), np.ones(2))


def test_avg_gap_is_mean_absolute_difference():
    ours = dict(UA=10.0, RA=90.0, TA=80.0, MIA=20.0, RTE=1.0)
    retrain = dict(UA=12.0, RA=95.0, TA=80.0, MIA=11.0)
    assert avg_gap(ours, retrain) == pytest.approx((2 + 5 + 0 + 9) / 4)


class FixedLogits(nn.Module):
    """Predicts class (x[0] > 0) with a confidence set by |x[0]|."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        v = x[:, 0]
        return torch.stack([-v, v], dim=1) + self.dummy


def test_evaluate_unlearning_on_a_known_model():
    forget = TensorDataset(torch.tensor([[2.0], [-2.0], [3.0], [1.0]]), torch.tensor([1, 1, 1, 0]))  # 2/4 right
    retain = TensorDataset(torch.tensor([[5.0], [-5.0], [4.0]]), torch.tensor([1, 0, 1]))  # all right
    test = TensorDataset(torch.tensor([[0.1], [-0.1]]), torch.tensor([0, 0]))  # 1/2 right
    metrics = evaluate_unlearning(FixedLogits(), forget, retain, test, forgotten_test=test)
    assert metrics["UA"] == pytest.approx(50.0)
    assert metrics["RA"] == pytest.approx(100.0)
    assert metrics["TA"] == pytest.approx(50.0)
    assert metrics["forgotten_class_TA"] == pytest.approx(50.0)
    assert 0.0 <= metrics["MIA"] <= 100.0


def test_predict_split_confidence_is_the_true_label_probability():
    data = TensorDataset(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1]))
    preds = predict_split(FixedLogits(), data)
    np.testing.assert_allclose(preds.confidence, [0.5, torch.softmax(torch.tensor([-1.0, 1.0]), 0)[1].item()], rtol=1e-6)
