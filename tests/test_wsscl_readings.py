"""WSS-CL's optional readings of its contrastive term: negatives restricted to other
classes, CoUn's retain-retain pairs beside the forget pairs, a lambda schedule, a projection head
and a learned feature scale."""
import math
from types import SimpleNamespace

import pytest
import torch

from wsscl_fast import WSSCLConfig, unlearn
from wsscl_fast.data import make_scenario
from wsscl_fast.methods.wsscl import ContrastiveFeatures, contrastive_weight_at, forget_contrastive_term
from wsscl_fast.reference import infonce_loss_ref

from helpers import QUIET

CTX = SimpleNamespace(backend="torch")


def _unit(v):
    return v / v.norm()


def _other_class_infonce_by_hand(z_f, z_view, z_r, y_f, y_r, t):
    """Per anchor: -log exp(s_ii/t) / (exp(s_ii/t) + sum over retain rows of other classes), mean over anchors."""
    total = 0.0
    for i in range(z_f.shape[0]):
        a = _unit(z_f[i])
        positive = math.exp(float(a @ _unit(z_view[i])) / t)
        negatives = sum(math.exp(float(a @ _unit(z_r[j])) / t) for j in range(z_r.shape[0]) if y_r[j] != y_f[i])
        total += -math.log(positive / (positive + negatives))
    return total / z_f.shape[0]


def test_other_class_negatives_match_the_formula_on_an_odd_batch():
    torch.manual_seed(0)
    z_f, z_view, z_r = torch.randn(5, 7), torch.randn(5, 7), torch.randn(11, 7)
    y_f, y_r = torch.tensor([0, 2, 2, 1, 0]), torch.tensor([0, 1, 2, 2, 0, 1, 3, 3, 0, 2, 1])
    config = WSSCLConfig(contrastive_negatives="other_classes", temperature=0.3)
    got = forget_contrastive_term(z_f, z_view, z_r, y_f, y_r, config, CTX, group=None)
    assert got.item() == pytest.approx(_other_class_infonce_by_hand(z_f, z_view, z_r, y_f, y_r, 0.3), rel=1e-5)


def test_other_class_negatives_equal_all_when_no_retain_row_shares_a_class():
    torch.manual_seed(1)
    z_f, z_view, z_r = torch.randn(4, 6), torch.randn(4, 6), torch.randn(9, 6)
    y_f, y_r = torch.tensor([3, 3, 3, 3]), torch.tensor([0, 1, 2, 0, 1, 2, 4, 5, 6])  # class 3 removed
    restricted = forget_contrastive_term(z_f, z_view, z_r, y_f, y_r, WSSCLConfig(contrastive_negatives="other_classes"),
                                         CTX, group=None)
    everything = forget_contrastive_term(z_f, z_view, z_r, y_f, y_r, WSSCLConfig(), CTX, group=None)
    assert everything.item() == pytest.approx(infonce_loss_ref(z_f, z_view, z_r, 0.5).item(), rel=1e-6)
    assert restricted.item() == pytest.approx(everything.item(), rel=1e-6)


def test_anchors_without_an_other_class_negative_add_zero():
    torch.manual_seed(2)
    z_f, z_view, z_r = torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 4)
    y_f, y_r = torch.tensor([1, 0]), torch.tensor([1, 1, 1])  # anchor 0 has no negative, anchor 1 has three
    config = WSSCLConfig(contrastive_negatives="other_classes")
    got = forget_contrastive_term(z_f, z_view, z_r, y_f, y_r, config, CTX, group=None)
    alone = infonce_loss_ref(z_f[1:], z_view[1:], z_r, 0.5)
    assert got.item() == pytest.approx(alone.item() / 2, rel=1e-6)


def test_lambda_schedules_give_the_stated_weights_at_each_step():
    ramp, decay = (WSSCLConfig(contrastive_weight=2.0, contrastive_schedule=s) for s in ("ramp", "decay"))
    assert [contrastive_weight_at(t, 4, ramp) for t in range(4)] == [0.5, 1.0, 1.5, 2.0]
    assert [contrastive_weight_at(t, 4, decay) for t in range(4)] == [2.0, 1.5, 1.0, 0.5]
    assert {contrastive_weight_at(t, 4, WSSCLConfig(contrastive_weight=2.0)) for t in range(4)} == {2.0}


def test_contrastive_features_are_unit_rows_times_the_learned_scale_and_seeded():
    config = WSSCLConfig(projection_dim=5, learn_feature_scale=True)
    features = ContrastiveFeatures(7, config, torch.Generator().manual_seed(3))
    again = ContrastiveFeatures(7, config, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(features.state_dict().values(), again.state_dict().values()))
    z = torch.randn(6, 7)
    out = features(z)
    assert out.shape == (6, 5)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(6))  # the scale starts at exp(0) = 1
    with torch.no_grad():
        features.log_scale.fill_(math.log(3.0))
    torch.testing.assert_close(features(z).norm(dim=1), torch.full((6,), 3.0))
    plain = ContrastiveFeatures(7, WSSCLConfig(), torch.Generator())
    assert list(plain.parameters()) == []
    torch.testing.assert_close(plain(z), torch.nn.functional.normalize(z, dim=1))


@pytest.mark.parametrize("fields, message", [
    (dict(contrastive_negatives="same"), "WSSCLConfig.contrastive_negatives must be 'all' or 'other_classes'"),
    (dict(retain_pair_weight=-0.5), "WSSCLConfig.retain_pair_weight must be >= 0"),
    (dict(contrastive_schedule="cosine"), "WSSCLConfig.contrastive_schedule must be 'constant', 'ramp' or 'decay'"),
    (dict(projection_dim=-1), "WSSCLConfig.projection_dim must be an integer >= 0"),
    (dict(projection_dim=8.5), "WSSCLConfig.projection_dim must be an integer >= 0"),
])
def test_reading_options_are_validated_by_name(fields, message):
    with pytest.raises(ValueError, match=message):
        WSSCLConfig(**fields)


@pytest.mark.parametrize("fields", [dict(contrastive_negatives="other_classes"), dict(retain_pair_weight=0.5),
                                    dict(contrastive_schedule="decay"), dict(projection_dim=16),
                                    dict(learn_feature_scale=True), dict(projection_dim=16, saliency_mode="hard")])
def test_each_reading_changes_the_run_and_leaves_the_callers_model_alone(fields, trained_digits_model, digits, tiny_recipe):
    scenario = make_scenario(digits, "random:0.1", seed=0)
    before = {k: v.clone() for k, v in trained_digits_model.state_dict().items()}
    default = tiny_recipe.method_configs["wsscl"].replace(forget_epochs=1, finetune_epochs=1)
    default_result = unlearn(trained_digits_model, scenario.forget, scenario.retain, "wsscl", default, runtime=QUIET)
    result = unlearn(trained_digits_model, scenario.forget, scenario.retain, "wsscl", default.replace(**fields),
                     test=scenario.test, runtime=QUIET)
    assert all(torch.equal(before[k], v) for k, v in trained_digits_model.state_dict().items())
    assert result.model.state_dict().keys() == before.keys()  # a projection head or scale is not kept
    changed = any(not torch.equal(a, b) for a, b in zip(default_result.model.state_dict().values(),
                                                        result.model.state_dict().values()))
    assert changed, "the option did not change the unlearned weights"
    assert result.metrics["RA"] > 80, result.metrics
