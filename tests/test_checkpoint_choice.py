"""WSS-CL's holdout checkpoint choice (methods/checkpoint_choice.py): the target forget error,
the score, which candidate is kept, and the run's use of it."""
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from wsscl_fast import Runtime, unlearn
from wsscl_fast.config import WSSCLConfig
from wsscl_fast.data import load_bundle, make_scenario
from wsscl_fast.methods.checkpoint_choice import CheckpointChoice
from wsscl_fast.recipes import recipe_for
from wsscl_fast.training import train_model

CPU = torch.device("cpu")


class Shifted(nn.Module):
    """logits = x + bias: an input that is one-hot-ish picks the class, the bias can override it."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, x):
        return x + self.bias


def one_hot(labels, classes=3, scale=1.0):
    return scale * nn.functional.one_hot(torch.tensor(labels), classes).float()


def holdout_half_wrong_on_class_0():
    """Holdout: class 0 predicted right on 2 of 4 samples, classes 1 and 2 always right."""
    return TensorDataset(one_hot([0, 0, 1, 1, 1, 1, 2, 2]), torch.tensor([0, 0, 0, 0, 1, 1, 2, 2]))


def retain_all_right():
    return TensorDataset(one_hot([0, 1, 2]), torch.tensor([0, 1, 2]))


def test_target_is_the_holdout_error_of_each_forget_samples_class_and_one_for_a_removed_class():
    forget_labels = torch.tensor([0, 0, 0, 1, 2])
    forget_images = one_hot(forget_labels.tolist())
    both = CheckpointChoice(Shifted(), forget_images, forget_labels, torch.tensor([0, 1, 2]),
                            holdout_half_wrong_on_class_0(), retain_all_right(), CPU)
    assert both.target == pytest.approx((3 * 0.5 + 0 + 0) / 5)
    removed_2 = CheckpointChoice(Shifted(), forget_images, forget_labels, torch.tensor([0, 1]),
                                 holdout_half_wrong_on_class_0(), retain_all_right(), CPU)
    assert removed_2.target == pytest.approx((3 * 0.5 + 0 + 1) / 5)
    # the holdout accuracy counts the retained classes' samples only: class 2's two are left out
    assert removed_2.reference_accuracy[0] == pytest.approx(4 / 6)


def acceptance_half_width(targets, holdout_counts):
    """1.96 sqrt(Var e_f + Var T), written out: targets (per forget sample), holdout_counts
    {class: (forget samples of it, holdout samples of it, its holdout error)}."""
    n = len(targets)
    forget_variance = sum(t * (1 - t) for t in targets) / n ** 2
    target_variance = sum((k / n) ** 2 * e * (1 - e) / m for k, m, e in holdout_counts.values())
    return 1.96 * (forget_variance + target_variance) ** 0.5


def test_the_tolerance_is_the_95_percent_region_of_forget_error_minus_target_both_measured():
    forget_labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])  # N = 10
    holdout = TensorDataset(one_hot([0, 0, 1, 1, 0, 1, 1, 1]), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    choice = CheckpointChoice(Shifted(), one_hot(forget_labels.tolist()), forget_labels, torch.tensor([0, 1, 2]),
                              holdout, retain_all_right(), CPU)  # class 0: 2 of 4 wrong; class 1: 1 of 4 wrong
    assert choice.target == pytest.approx((3 * 0.5 + 7 * 0.25) / 10)
    expected = acceptance_half_width([0.5] * 3 + [0.25] * 7, {0: (3, 4, 0.5), 1: (7, 4, 0.25)})
    assert choice.tolerance == pytest.approx(expected)
    # a removed class's target 1 is exact, and the floor is 1/N
    removed = CheckpointChoice(Shifted(), one_hot(forget_labels.tolist()), forget_labels, torch.tensor([2]),
                               holdout_half_wrong_on_class_0(), retain_all_right(), CPU)
    assert removed.target == 1.0 and removed.tolerance == pytest.approx(1 / 10)


def test_the_best_score_is_kept_and_restored_later_ties_win_and_damage_costs():
    forget_labels = torch.tensor([0, 0, 1, 1]).repeat(4)  # N = 16: four copies of four samples
    # the second class-0 sample sits near class 1: a bias of 0.2 on class 1 flips it alone
    forget_images = torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.4, 0.0], [0.0, 0.5, 0.0], [0.0, 0.5, 0.0]]).repeat(4, 1)
    # 3 of 4 right, 25 copies: class 0 (25) always right, class 1 (50) half wrong, class 2 (25) right
    holdout = TensorDataset(one_hot([0, 1, 2, 0]).repeat(25, 1), torch.tensor([0, 1, 2, 1]).repeat(25))
    model = Shifted()
    retain = TensorDataset(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.5]]),
                           torch.tensor([0, 1, 2, 0]))  # all right; the last flips to 2 with a bias of 0.15 on 2
    choice = CheckpointChoice(model, forget_images, forget_labels, torch.tensor([0, 1, 2]), holdout, retain, CPU)
    # T = holdout error of the forget samples' classes: class 0 right (0), class 1 half right (0.5)
    assert choice.target == pytest.approx(0.25)
    s = acceptance_half_width([0.0] * 8 + [0.5] * 8, {0: (8, 25, 0.0), 1: (8, 50, 0.5)})  # distances within: 0
    assert 0 < s < 0.25
    assert choice.tolerance == pytest.approx(s)
    assert choice.candidates[0]["score"] == pytest.approx(0.25 - s)  # forget error 0, no accuracy lost

    def set_bias(*values):
        with torch.no_grad():
            model.bias.copy_(torch.tensor(values))

    set_bias(0.0, 0.0, 5.0)  # everything predicted 2: forget error 1, holdout accuracy 1/4, retain 1/4
    choice.consider(model, "damaged")
    assert choice.candidates[-1]["score"] == pytest.approx(0.75 - s + 0.5 + 0.75)
    set_bias(0.0, 0.2, 0.15)  # at the target forget error, but one retain sample of four lost
    choice.consider(model, "retain damaged")
    assert choice.candidates[-1]["score"] == pytest.approx(0.25)
    assert choice.best_at == "given model"  # the damage costs more than the given model's distance
    set_bias(0.0, 0.2, 0.0)  # one of four forget samples wrong: the target, holdout untouched
    choice.consider(model, "at the target")
    assert choice.candidates[-1]["score"] == pytest.approx(0.0)
    set_bias(0.0, 0.2, 0.01)  # other weights, the same predictions: a tie
    choice.consider(model, "tied, later")
    set_bias(0.0, 0.0, 0.0)
    choice.consider(model, "back to the given model")
    assert choice.best_at == "tied, later"
    fresh = Shifted()
    info = choice.restore_best(fresh)
    assert info["chosen"] == "tied, later" and info["forget_error_tolerance"] == pytest.approx(s)
    assert torch.equal(fresh.bias, torch.tensor([0.0, 0.2, 0.01]))
    assert [c["at"] for c in info["candidates"]] == ["given model", "damaged", "retain damaged", "at the target",
                                                     "tied, later", "back to the given model"]


def holdout_half_wrong_on_class_1():
    """100 samples: class 1 (50) predicted right half the time, classes 0 and 2 always right."""
    return TensorDataset(one_hot([0, 1, 2, 0]).repeat(25, 1), torch.tensor([0, 1, 2, 1]).repeat(25))


def test_accuracy_is_not_traded_for_a_forget_error_nearer_the_target_within_its_tolerance():
    holdout = holdout_half_wrong_on_class_1()
    labels = torch.tensor([1, 1, 1, 1]).repeat(4)  # T = 0.5, N = 16: s = 1.96 sqrt(1/64 + 1/200) = 0.28
    retain = TensorDataset(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.5]]),
                           torch.tensor([0, 1, 2, 0]))  # the last flips to class 2 with a bias of 0.15 on 2
    model = Shifted()
    choice = CheckpointChoice(model, one_hot([0, 1, 1, 1] * 4), labels, torch.tensor([0, 1, 2]), holdout, retain, CPU)
    assert choice.tolerance == pytest.approx(1.96 * (16 * 0.25 / 16 ** 2 + 0.25 / 50) ** 0.5)
    assert choice.candidates[0]["forget_error"] == pytest.approx(0.25)  # 0.25 from T: within s
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.0, 0.0, 0.15]))  # forget error 0.5 = T, one retain sample lost
    choice.consider(model, "exactly at T, retain damaged")
    assert [c["score"] for c in choice.candidates] == [pytest.approx(0.0), pytest.approx(0.25)]
    assert choice.best_at == "given model"


def test_a_given_model_within_the_tolerance_of_the_target_scores_zero_and_is_at_target():
    holdout = holdout_half_wrong_on_class_1()
    labels = torch.tensor([1, 1, 1, 1]).repeat(4)  # T = 0.5, N = 16: tolerance 0.28
    images = [one_hot([1, 1, 1, 1] * 4), one_hot([0, 1, 1, 1] * 4), one_hot([0, 0, 0, 1] * 4)]  # error 0, 1/4, 3/4
    choices = [CheckpointChoice(Shifted(), x, labels, torch.tensor([0, 1, 2]), holdout, retain_all_right(), CPU)
               for x in images]
    assert [c.candidates[0]["score"] for c in choices] == [pytest.approx(0.5 - choices[0].tolerance), 0.0, 0.0]
    assert [c.at_target() for c in choices] == [False, True, True]
    removed = CheckpointChoice(Shifted(), one_hot([1, 1, 1, 1] * 4), labels, torch.tensor([0, 2]), holdout,
                               retain_all_right(), CPU)  # T = 1: the tolerance is 1/N, error 0 is far from it
    assert removed.target == 1.0 and removed.tolerance == 1 / 16 and not removed.at_target()


def test_state_dict_round_trip_keeps_the_best_and_the_candidates():
    labels = torch.tensor([0, 1])
    choice = CheckpointChoice(Shifted(), one_hot([0, 1]), labels, torch.tensor([0, 1, 2]),
                              holdout_half_wrong_on_class_0(), retain_all_right(), CPU)
    other = CheckpointChoice(Shifted(), one_hot([0, 1]), labels, torch.tensor([0, 1, 2]),
                             holdout_half_wrong_on_class_0(), retain_all_right(), CPU)
    model = Shifted()
    with torch.no_grad():
        model.bias.fill_(0.25)
    choice.consider(model, "epoch 1")
    other.load_state_dict(choice.state_dict())
    assert other.best_at == choice.best_at and other.candidates == choice.candidates
    assert torch.equal(other.best_state["bias"], choice.best_state["bias"])


def test_a_holdout_without_a_retained_class_is_refused():
    with pytest.raises(ValueError, match="holdout has no sample of a class the retain set still has"):
        CheckpointChoice(Shifted(), one_hot([0]), torch.tensor([0]), torch.tensor([1]),
                         TensorDataset(one_hot([0, 2]), torch.tensor([0, 2])), retain_all_right(), CPU)


def test_config_refuses_an_unknown_choice():
    with pytest.raises(ValueError, match="checkpoint_choice must be 'last' or 'holdout'"):
        WSSCLConfig(checkpoint_choice="best")


@pytest.fixture(scope="module")
def digits_run():
    bundle = load_bundle("digits", seed=0)
    recipe = recipe_for(bundle)
    torch.manual_seed(0)
    model = train_model(recipe.build_model(bundle), bundle.train, recipe.train.replace(epochs=2), CPU, progress=False)
    config = recipe.method_configs["wsscl"].replace(forget_epochs=2, finetune_epochs=2, checkpoint_choice="holdout")
    return model, make_scenario(bundle, "class:3", seed=0), config, bundle.validation


def test_unlearn_returns_the_chosen_candidate_and_reports_every_epoch(digits_run):
    model, scenario, config, holdout = digits_run
    result = unlearn(model, scenario.forget, scenario.retain, "wsscl", config, holdout=holdout, seed=0,
                     runtime=Runtime(progress=False))
    info = result.info["checkpoint_choice"]
    assert [c["at"] for c in info["candidates"]] == ["given model", "forget epoch 1", "forget epoch 2",
                                                     "contrastive epoch 1", "contrastive epoch 2"]
    assert info["target_forget_error"] == 1.0 and info["skipped_training"] is False  # class 3 is removed
    best = min(info["candidates"], key=lambda c: c["score"])
    assert info["chosen"] in [c["at"] for c in info["candidates"] if c["score"] == best["score"]]
    chosen = next(c for c in info["candidates"] if c["at"] == info["chosen"])
    forget_images = torch.stack([scenario.forget[i][0] for i in range(len(scenario.forget))])
    forget_labels = torch.tensor([int(scenario.forget[i][1]) for i in range(len(scenario.forget))])
    result.model.eval()
    with torch.no_grad():
        error = (result.model(forget_images).argmax(1) != forget_labels).float().mean()
    assert float(error) == pytest.approx(chosen["forget_error"])


def test_a_given_model_already_at_the_target_is_returned_without_training(digits_run):
    model, _, config, holdout = digits_run
    bundle = load_bundle("digits", seed=0)
    scenario = make_scenario(bundle, "random:0.1", seed=0)
    result = unlearn(model, scenario.forget, scenario.retain, "wsscl", config, holdout=holdout, seed=0,
                     runtime=Runtime(progress=False))
    info = result.info["checkpoint_choice"]
    assert info["skipped_training"] is True and [c["at"] for c in info["candidates"]] == ["given model"]
    assert all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(), model.state_dict().values()))
    assert set(result.info["work"]["by_stage"]) == {"targets"}  # scored, then returned: no saliency, no training


def test_without_a_holdout_the_last_model_is_returned_and_the_info_says_why(digits_run):
    model, scenario, config, _ = digits_run
    chosen = unlearn(model, scenario.forget, scenario.retain, "wsscl", config, seed=0, runtime=Runtime(progress=False))
    last = unlearn(model, scenario.forget, scenario.retain, "wsscl", config.replace(checkpoint_choice="last"), seed=0,
                   runtime=Runtime(progress=False))
    assert chosen.info["checkpoint_choice"] == "last: no holdout to calibrate the choice on"
    assert all(torch.equal(a, b) for a, b in zip(chosen.model.state_dict().values(), last.model.state_dict().values()))
