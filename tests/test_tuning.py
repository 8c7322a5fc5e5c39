"""The tuning protocol's trial score: the mean validation gap over several tuning seeds, and a
cost cap counted in work (samples through the model), not seconds."""
import math

import pytest

from benchmarks.quality.tuning import TuningSeed, score_config, split_validation, validation_metrics
from wsscl_fast import Runtime, unlearn
from wsscl_fast.data import make_scenario
from wsscl_fast.metrics import avg_gap
from wsscl_fast.work import retrain_work


@pytest.fixture(scope="module")
def tuning_seeds(digits, tiny_recipe, trained_digits_model):
    seeds = []
    for seed in (100, 101):
        run_on, scoring = split_validation(make_scenario(digits, "random:0.1", seed=seed))
        retrain = unlearn(trained_digits_model, run_on.forget, run_on.retain, "retrain",
                          tiny_recipe.train.replace(epochs=2), seed=seed, runtime=Runtime(progress=False)).model
        seeds.append(TuningSeed(seed, trained_digits_model, run_on, scoring, validation_metrics(retrain, scoring),
                                retrain_work(2, len(run_on.retain))))
    return seeds


def test_a_trial_scores_the_mean_gap_over_every_tuning_seed(tiny_recipe, tuning_seeds):
    config = tiny_recipe.method_configs["ft"].replace(epochs=1)
    scored = score_config("ft", config, tuning_seeds, cost_cap=1.0)
    assert not scored["over_cap"] and len(scored["gaps"]) == 2
    assert scored["work_fraction"] == pytest.approx(0.5)  # 1 epoch of fine-tuning against Retrain's 2
    by_hand = []
    for s in tuning_seeds:
        model = unlearn(s.original, s.run_on.forget, s.run_on.retain, "ft", config, holdout=s.run_on.holdout,
                        seed=s.seed, runtime=Runtime(device="cpu", progress=False)).model
        by_hand.append(avg_gap(validation_metrics(model, s.scoring), s.retrain_validation))
    assert scored["gaps"] == pytest.approx(by_hand) and scored["score"] == pytest.approx(sum(by_hand) / 2)


def test_a_trial_over_the_work_cap_fails_whatever_the_machine_load(tiny_recipe, tuning_seeds):
    config = tiny_recipe.method_configs["ft"].replace(epochs=3)  # 1.5 x Retrain's work
    scored = score_config("ft", config, tuning_seeds, cost_cap=1.0)
    assert scored["over_cap"] and math.isnan(scored["score"]) and scored["work_fraction"] == pytest.approx(1.5)
    assert scored["gaps"] == [] and len(scored["rte"]) == 1  # the second seed never ran
