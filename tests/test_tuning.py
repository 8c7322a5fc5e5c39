"""The tuning protocol's trial score: the mean over several tuning seeds of the validation gap or
of the margin distance to Retrain, and a cost cap counted in work (samples through the model),
not seconds."""
import math

import pytest
import torch

from benchmarks.quality.tuning import (RETAIN_POINTS, TuningSeed, distance_points, score_config, seed_score,
                                       split_margins, split_validation, validation_metrics)
from wsscl_fast import Runtime, unlearn
from wsscl_fast.data import dataset_labels, make_scenario
from wsscl_fast.metrics import avg_gap, logits_on
from wsscl_fast.work import retrain_work


@pytest.fixture(scope="module")
def tuning_seeds(digits, tiny_recipe, trained_digits_model):
    seeds = []
    for seed in (100, 101):
        run_on, scoring = split_validation(make_scenario(digits, "random:0.1", seed=seed))
        retrain = unlearn(trained_digits_model, run_on.forget, run_on.retain, "retrain",
                          tiny_recipe.train.replace(epochs=2), seed=seed, runtime=Runtime(progress=False)).model
        points = distance_points(run_on, scoring)
        seeds.append(TuningSeed(seed, trained_digits_model, run_on, scoring, validation_metrics(retrain, scoring),
                                retrain_work(2, len(run_on.retain)), points, split_margins(retrain, points)))
        seeds[-1].retrain = retrain  # for the tests below only
    return seeds


def test_a_trial_scores_the_mean_gap_over_every_tuning_seed(tiny_recipe, tuning_seeds):
    config = tiny_recipe.method_configs["ft"].replace(epochs=1)
    scored = score_config("ft", config, tuning_seeds, cost_cap=1.0)
    assert not scored["over_cap"] and len(scored["per_seed"]) == 2
    assert scored["work_fraction"] == pytest.approx(0.5)  # 1 epoch of fine-tuning against Retrain's 2
    by_hand = []
    for s in tuning_seeds:
        model = unlearn(s.original, s.run_on.forget, s.run_on.retain, "ft", config, holdout=s.run_on.holdout,
                        seed=s.seed, runtime=Runtime(device="cpu", progress=False)).model
        by_hand.append(avg_gap(validation_metrics(model, s.scoring), s.retrain_validation))
    assert scored["per_seed"] == pytest.approx(by_hand) and scored["score"] == pytest.approx(sum(by_hand) / 2)


def test_a_trial_over_the_work_cap_fails_whatever_the_machine_load(tiny_recipe, tuning_seeds):
    config = tiny_recipe.method_configs["ft"].replace(epochs=3)  # 1.5 x Retrain's work
    scored = score_config("ft", config, tuning_seeds, cost_cap=1.0)
    assert scored["over_cap"] and math.isnan(scored["score"]) and scored["work_fraction"] == pytest.approx(1.5)
    assert scored["per_seed"] == [] and len(scored["rte"]) == 1  # the second seed never ran


def test_the_margin_objective_is_the_mean_over_splits_of_the_mean_absolute_margin_shift(tiny_recipe, tuning_seeds):
    config = tiny_recipe.method_configs["ft"].replace(epochs=1)
    scored = score_config("ft", config, tuning_seeds, cost_cap=1.0, objective="margin")
    by_hand = []
    for s in tuning_seeds:
        model = unlearn(s.original, s.run_on.forget, s.run_on.retain, "ft", config, holdout=s.run_on.holdout,
                        seed=s.seed, runtime=Runtime(device="cpu", progress=False)).model
        per_split = []
        for data in s.points.values():
            z, z_r, y = logits_on(model, data).double(), logits_on(s.retrain, data).double(), dataset_labels(data)
            rows = torch.arange(len(y))
            margin, margin_r = (t[rows, y] - t.index_put((rows, y), torch.tensor(float("-inf"), dtype=t.dtype))
                                .logsumexp(1) for t in (z, z_r))
            per_split.append(float((margin - margin_r).abs().mean()))
        by_hand.append(sum(per_split) / 3)
    assert scored["per_seed"] == pytest.approx(by_hand) and scored["score"] == pytest.approx(sum(by_hand) / 2)
    assert all(score > 0 for score in by_hand)  # fine-tuning is not Retrain


def test_retrain_is_at_margin_distance_zero_and_the_points_cover_forget_retain_and_scoring(tuning_seeds):
    s = tuning_seeds[0]
    assert seed_score(s.retrain, s, "margin") == 0.0
    assert seed_score(s.original, s, "margin") > 0.0
    assert len(s.points["forget"]) == len(s.run_on.forget) and len(s.points["validation"]) == len(s.scoring.test)
    assert len(s.points["retain"]) == min(RETAIN_POINTS, len(s.run_on.retain))


def test_the_margin_objective_without_retrain_margins_and_an_unknown_objective_are_refused(tiny_recipe, tuning_seeds):
    s = tuning_seeds[0]
    bare = TuningSeed(s.seed, s.original, s.run_on, s.scoring, s.retrain_validation, s.retrain_work)
    with pytest.raises(ValueError, match="retrain_margins"):
        seed_score(s.original, bare, "margin")
    with pytest.raises(ValueError, match="objective must be one of"):
        score_config("ft", tiny_recipe.method_configs["ft"], tuning_seeds, cost_cap=1.0, objective="klom")
