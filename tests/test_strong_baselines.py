"""NegGrad+, SCRUB and CoUn: their losses against plain formulas, their configs validated, and
what each one does to the model (the forgetting itself is in test_methods.py)."""
import math

import pytest
import torch

from wsscl_fast import CoUnConfig, NegGradPlusConfig, SCRUBConfig, unlearn
from wsscl_fast.methods.common import nt_xent
from wsscl_fast.methods.scrub import distillation_kl, step_loss

from helpers import QUIET


def test_nt_xent_matches_the_simclr_formula():
    torch.manual_seed(0)
    z_a, z_b, t = torch.randn(3, 5), torch.randn(3, 5), 0.5
    views = [v / v.norm() for v in torch.cat([z_a, z_b])]
    total = 0.0
    for i in range(6):  # anchor i, positive its other view, every other view in the denominator
        j = (i + 3) % 6
        sims = {k: math.exp(float(views[i] @ views[k]) / t) for k in range(6) if k != i}
        total += -math.log(sims[j] / sum(sims.values()))
    assert nt_xent(z_a, z_b, t).item() == pytest.approx(total / 6, rel=1e-5)


def test_distillation_kl_is_zero_for_the_teacher_and_positive_otherwise():
    logits = torch.randn(4, 10)
    assert distillation_kl(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_kl(logits, logits.flip(1), 4.0).item() > 0


@pytest.mark.parametrize("build, message", [
    (lambda: NegGradPlusConfig(alpha=1.5), r"NegGradPlusConfig.alpha must be in \[0, 1\]"),
    (lambda: NegGradPlusConfig(epochs=0), "NegGradPlusConfig.epochs must be an integer >= 1"),
    (lambda: SCRUBConfig(max_epochs=6, epochs=5), r"SCRUBConfig.max_epochs must be an integer in \[0, epochs=5\]"),
    (lambda: SCRUBConfig(temperature=0), "SCRUBConfig.temperature must be > 0"),
    (lambda: SCRUBConfig(kl_weight=-1), "SCRUBConfig.kl_weight must be >= 0"),
    (lambda: CoUnConfig(contrastive_weight=-0.1), "CoUnConfig.contrastive_weight must be >= 0"),
    (lambda: CoUnConfig(lr=0), "CoUnConfig.lr must be > 0"),
])
def test_configs_refuse_bad_values_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def _forget_loss(model, scenario):
    x, y = zip(*(scenario.forget[i] for i in range(len(scenario.forget))))
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(torch.stack(x)), torch.tensor(y)).item()


def test_neggrad_plus_alpha_one_is_fine_tuning_and_lower_alpha_ascends(trained_digits_model, digits):
    from wsscl_fast.data import make_scenario

    scenario = make_scenario(digits, "class:3")
    base = dict(epochs=1, batch_size=64, aug_flip=False, aug_pad=1)
    fine_tuned = unlearn(trained_digits_model, scenario.forget, scenario.retain, "neggrad_plus",
                         NegGradPlusConfig(alpha=1.0, **base), runtime=QUIET)
    ascended = unlearn(trained_digits_model, scenario.forget, scenario.retain, "neggrad_plus",
                       NegGradPlusConfig(alpha=0.5, **base), runtime=QUIET)
    assert _forget_loss(ascended.model, scenario) > _forget_loss(fine_tuned.model, scenario) + 1.0


def test_scrub_max_steps_ascend_the_kl_and_min_steps_descend_kl_plus_ce():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
    config = SCRUBConfig(kl_weight=0.3, ce_weight=2.0, temperature=2.0)
    kl = distillation_kl(student, teacher, 2.0)
    assert step_loss("max", student, teacher, labels, config).item() == pytest.approx(-kl.item())
    ce = torch.nn.functional.cross_entropy(student, labels)
    assert step_loss("min", student, teacher, labels, config).item() == pytest.approx((0.3 * kl + 2.0 * ce).item())


def test_scrub_without_max_steps_stays_near_the_teacher(trained_digits_model, digits):
    """Only min-steps (distil + CE on the retain set) keep the forget set fitted; max-steps unfit it."""
    from wsscl_fast.data import make_scenario

    scenario = make_scenario(digits, "class:3")
    base = dict(epochs=2, batch_size=64, aug_flip=False, aug_pad=1, lr=0.05)
    kept = unlearn(trained_digits_model, scenario.forget, scenario.retain, "scrub", SCRUBConfig(max_epochs=0, **base),
                   runtime=QUIET)
    pushed = unlearn(trained_digits_model, scenario.forget, scenario.retain, "scrub", SCRUBConfig(max_epochs=2, **base),
                     runtime=QUIET)
    assert _forget_loss(pushed.model, scenario) > _forget_loss(kept.model, scenario) + 1.0


def test_coun_never_reads_the_forget_set(trained_digits_model, digits):
    """The same retain set with two different forget sets gives the same model."""
    from torch.utils.data import Subset

    from wsscl_fast.data import make_scenario

    scenario = make_scenario(digits, "class:3")
    config = CoUnConfig(epochs=1, batch_size=64, aug_flip=False, view_flip=False, view_pad=1)
    forgets = [scenario.forget, Subset(scenario.forget, range(5))]
    models = [unlearn(trained_digits_model, f, scenario.retain, "coun", config, runtime=QUIET).model for f in forgets]
    for p, q in zip(*(m.parameters() for m in models)):
        assert torch.equal(p, q)
