"""The audit's three tests on tiny data: each finds what it is meant to find."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from wsscl_fast.audit import (Audit, MembershipReference, linear_probe, lira_scores, membership_test,
                              reference_halves, relearning_attack, tpr_at_fpr)
from wsscl_fast.data import make_scenario
from wsscl_fast.metrics import predict_split


def _suppressed_head(model, cls: int, by: float = 10.0):
    """A copy whose head only pushes class ``cls`` down: the features are untouched."""
    suppressed = copy.deepcopy(model)
    with torch.no_grad():
        suppressed.head.bias[cls] -= by
    return suppressed


def test_relearning_restores_a_model_that_only_suppressed_its_head(trained_digits_model, digits):
    classwise = make_scenario(digits, "class:3")
    suppressed = _suppressed_head(trained_digits_model, 3)
    assert predict_split(suppressed, classwise.forget).accuracy < 5  # it looks unlearned
    result = relearning_attack(suppressed, classwise.forget, classwise.retain, Audit(relearn_lr=0.05))
    assert result["relearn_k"] == 10  # 1% of ~130 forget samples is below the floor of 10
    assert result["relearn_k_FA"] > 80, result  # a few forget samples bring the whole class back


def test_linear_probe_sees_through_a_suppressed_head(trained_digits_model, digits):
    random_forget = make_scenario(digits, "random:0.2")
    scrambled = copy.deepcopy(trained_digits_model)
    with torch.no_grad():
        scrambled.head.weight.copy_(scrambled.head.weight[torch.randperm(10, generator=torch.Generator().manual_seed(0))])
    assert predict_split(scrambled, random_forget.forget).accuracy < 40
    probe = linear_probe(scrambled, random_forget.forget, random_forget.retain, Audit())
    assert probe["probe_FA"] > 80, probe


def _overfit_mlp(x, y, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def test_membership_test_separates_members_from_non_members_on_an_overfit_model():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 16, generator=generator), torch.randint(0, 4, (200,), generator=generator)
    pool = TensorDataset(x, y)  # random labels: only memorisation can fit them
    members = reference_halves(len(pool), 4, seed=1)
    references = MembershipReference([_overfit_mlp(x[m], y[m], r) for r, m in enumerate(members)],
                                     tuple(str(i) for i in range(200)), members)
    target = _overfit_mlp(x[:100], y[:100], 9)  # trained on rows 0-99
    calibration = Subset(pool, range(100, 150))  # known non-members
    hit = membership_test(target, Subset(pool, range(50)), calibration, references)
    miss = membership_test(target, Subset(pool, range(150, 200)), calibration, references)
    assert hit["lira_tpr@0.01"] > 50, hit["lira_tpr@0.01"]
    assert miss["lira_tpr@0.01"] < 20, miss["lira_tpr@0.01"]
    assert len(hit["lira_scores"]) == 50


def test_lira_scores_follow_the_closer_gaussian():
    reference = torch.tensor([[5.0, 0.0], [4.0, 1.0], [0.0, 5.0], [1.0, 4.0]], dtype=torch.float64)
    members = torch.tensor([[True, False], [True, False], [False, True], [False, True]])
    # both samples: IN mean 4.5, OUT mean 0.5; the target sits on the IN mean for sample 0, the OUT mean for 1
    scores = lira_scores(torch.tensor([4.5, 0.5], dtype=torch.float64), reference, members)
    assert scores[0] > 0 > scores[1]
    assert tpr_at_fpr(torch.tensor([3.0, 0.5]), torch.arange(100.0) / 100, 0.01) == 50.0


def test_audit_inputs_are_checked():
    with pytest.raises(ValueError, match="even number"):
        reference_halves(10, 3)
    with pytest.raises(ValueError, match="members must be a bool tensor of shape"):
        MembershipReference([nn.Linear(2, 2)], ("a", "b"), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one reference model that trained on it"):
        lira_scores(torch.zeros(2), torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))
    references = MembershipReference([nn.Linear(2, 2)] * 2, ("0", "1"), reference_halves(2, 2))
    with pytest.raises(ValueError, match="not in the reference pool"):
        references.rows(TensorDataset(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)))
