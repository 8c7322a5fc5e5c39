"""The deterministic cost count: samples through the model, forward with and without autograd."""
import copy

import torch
from torch import nn

from wsscl_fast import Runtime, unlearn
from wsscl_fast.data import make_scenario
from wsscl_fast.work import counting_work, retrain_work

QUIET = Runtime(progress=False)


def test_counting_work_counts_batches_by_autograd_mode_and_copies_share_the_count():
    model = nn.Linear(3, 2)
    with counting_work(model) as count:
        model(torch.zeros(5, 3)).sum().backward()
        with torch.no_grad():
            copy.deepcopy(model)(torch.zeros(7, 3))  # a teacher copied inside the run counts too
    model(torch.zeros(11, 3))  # after the block: not counted
    assert (count.trained, count.inferred, count.sample_passes) == (5, 7, 3 * 5 + 7)


def test_retrain_work_is_epochs_times_retain_passes(digits, tiny_recipe, trained_digits_model):
    scenario = make_scenario(digits, "random:0.1", seed=0)
    result = unlearn(trained_digits_model, scenario.forget, scenario.retain, "retrain",
                     tiny_recipe.train.replace(epochs=2), runtime=QUIET)
    passes = retrain_work(2, len(scenario.retain))
    assert result.info["work"] == {"trained_samples": 2 * len(scenario.retain), "inferred_samples": 0,
                                   "sample_passes": passes, "by_stage": {"retrain": passes}}


def test_a_method_with_a_teacher_counts_its_inference(digits, tiny_recipe, trained_digits_model):
    scenario = make_scenario(digits, "random:0.1", seed=0)
    config = tiny_recipe.method_configs["scrub"].replace(epochs=1, max_epochs=1)
    work = unlearn(trained_digits_model, scenario.forget, scenario.retain, "scrub", config, runtime=QUIET).info["work"]
    assert work["inferred_samples"] > 0 and work["trained_samples"] >= len(scenario.retain)


def test_wsscl_counts_its_work_per_stage(digits, tiny_recipe, trained_digits_model):
    """Saliency: one pass with gradients over the forget set; targets: num_views views of each
    forget sample, then each forget and holdout sample once, all without autograd; the stages
    add up to the run's total."""
    scenario = make_scenario(digits, "class:3", seed=0)
    config = tiny_recipe.method_configs["wsscl"].replace(forget_epochs=1, finetune_epochs=1)
    work = unlearn(trained_digits_model, scenario.forget, scenario.retain, "wsscl", config, holdout=scenario.holdout,
                   runtime=QUIET).info["work"]
    by_stage, n_forget = work["by_stage"], len(scenario.forget)
    assert by_stage["saliency"] == 3 * n_forget
    assert by_stage["targets"] == config.num_views * n_forget + n_forget + len(scenario.holdout)
    assert by_stage["forget"] > 0 and by_stage["contrastive"] > 0
    assert sum(by_stage.values()) == work["sample_passes"]
