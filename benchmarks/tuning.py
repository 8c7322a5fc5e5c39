"""One tuning protocol for every unlearning method, as the field runs it.

- The same number of Optuna trials (TPE, seeded) for every method, WSS-CL included, each over
  its own knobs (:data:`SEARCH_SPACES`): the learning rate on a log scale in [1e-4, 1e-1] and
  the epochs for all, plus the method's own weights.
- The same cost cap for every trial: a fraction of Retrain's training time in the same run. A
  trial over the cap counts as failed (its score is the penalty below), so no method buys its
  gap with time.
- Trials are scored without the test set: the Avg. Gap to Retrain with a scoring half of the
  validation split standing in for the test set (TA, and the MIA's non-member side). The
  methods calibrate on the other half (their ``holdout``), here and in the reported runs.
- Tuning runs on seeds that are never reported (a fresh forget set and original per seed).

Optuna is a benchmark dependency (``pip install optuna``), not a library one.
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch
from torch.utils.data import Subset

from wsscl_fast.api import unlearn
from wsscl_fast.data import ForgetScenario, dataset_labels
from wsscl_fast.execution import Runtime
from wsscl_fast.metrics import avg_gap, evaluate_unlearning

OVER_CAP_PENALTY = 100.0  #: added to the gap of a trial that ran over the cost cap (gaps are in [0, 100])
LR_RANGE = (1e-4, 1e-1)


def _lr(trial, name: str = "lr") -> float:
    return trial.suggest_float(name, *LR_RANGE, log=True)


def _scrub(trial) -> dict:
    epochs = trial.suggest_int("epochs", 1, 8)
    return dict(lr=_lr(trial), epochs=epochs, max_epochs=trial.suggest_int("max_epochs", 0, min(3, epochs)),
                kl_weight=trial.suggest_float("kl_weight", 0.1, 10.0, log=True))


#: method -> trial -> the config fields it sets. Epoch ranges keep the longest trial near the cost cap.
SEARCH_SPACES = {
    "ft": lambda t: dict(lr=_lr(t), epochs=t.suggest_int("epochs", 1, 10)),
    "ga": lambda t: dict(ga_lr=_lr(t, "ga_lr"), ga_epochs=t.suggest_int("ga_epochs", 1, 10)),
    "rl": lambda t: dict(lr=_lr(t), epochs=t.suggest_int("epochs", 1, 10)),
    "salun": lambda t: dict(lr=_lr(t), epochs=t.suggest_int("epochs", 1, 10),
                            saliency_ratio=t.suggest_float("saliency_ratio", 0.1, 0.9)),
    "l1_sparse": lambda t: dict(lr=_lr(t), epochs=t.suggest_int("epochs", 1, 10),
                                l1_alpha=t.suggest_float("l1_alpha", 1e-5, 1e-3, log=True)),
    "neggrad_plus": lambda t: dict(lr=_lr(t), epochs=t.suggest_int("epochs", 1, 10),
                                   alpha=t.suggest_float("alpha", 0.5, 1.0)),
    "scrub": _scrub,
    "coun": lambda t: dict(lr=_lr(t), epochs=t.suggest_int("epochs", 1, 10),
                           contrastive_weight=t.suggest_float("contrastive_weight", 0.01, 10.0, log=True)),
    "wsscl": lambda t: dict(forget_lr=_lr(t, "forget_lr"), finetune_lr=_lr(t, "finetune_lr"),
                            forget_epochs=t.suggest_int("forget_epochs", 0, 5),
                            finetune_epochs=t.suggest_int("finetune_epochs", 1, 8),
                            contrastive_weight=t.suggest_float("contrastive_weight", 0.01, 10.0, log=True),
                            finetune_forget_weight=t.suggest_float("finetune_forget_weight", 0.0, 6.0)),
}


def split_validation(scenario: ForgetScenario, seed: int = 0) -> tuple[ForgetScenario, ForgetScenario]:
    """(the scenario the methods run on, with one seeded half of the validation split as its
    holdout; the scenario tuning scores on, whose "test" is the other half).

    For class-wise forgetting the scoring half is split like the test set: TA on the remaining
    classes, forgotten_class_TA on the removed ones."""
    validation = scenario.holdout
    if validation is None or len(validation) < 2:
        raise ValueError("tuning needs a validation split of at least 2 samples (scenario.holdout)")
    order = torch.randperm(len(validation), generator=torch.Generator().manual_seed(seed)).tolist()
    calibration, scoring = Subset(validation, order[::2]), Subset(validation, order[1::2])
    run_on = dataclasses.replace(scenario, holdout=calibration)
    if scenario.forgotten_test is None:
        return run_on, dataclasses.replace(scenario, test=scoring)
    removed = set(dataset_labels(scenario.forget).unique().tolist())
    labels = dataset_labels(scoring).tolist()
    kept = [i for i, label in enumerate(labels) if label not in removed]
    gone = [i for i, label in enumerate(labels) if label in removed]
    return run_on, dataclasses.replace(scenario, test=Subset(scoring, kept), forgotten_test=Subset(scoring, gone))


def validation_metrics(model, scoring: ForgetScenario) -> dict:
    """UA, RA and the validation-split TA and MIA of ``model`` (no test sample is read)."""
    return evaluate_unlearning(model, scoring.forget, scoring.retain, scoring.test, scoring.forgotten_test)


def tune_method(method: str, base_config, original, run_on: ForgetScenario, scoring: ForgetScenario,
                retrain_validation: dict, *, trials: int, cost_cap_s: float, seed: int, sampler_seed: int = 0,
                space=None) -> dict:
    """Tune ``method`` on one tuning seed over ``space`` (default: its :data:`SEARCH_SPACES` entry).
    Returns the chosen config (as a dict), its validation gap, and every trial's fields, gap and seconds."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space or SEARCH_SPACES[method]
    history = []

    def objective(trial) -> float:
        fields = space(trial)
        config = base_config.replace(**fields)
        start = time.perf_counter()
        try:
            result = unlearn(original, run_on.forget, run_on.retain, method, config, holdout=run_on.holdout,
                             seed=seed, runtime=Runtime(device="cpu", progress=False))
        # a diverged run (a NaN or inf loss: FloatingPointError) is a failed trial, not a crash
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            history.append(dict(number=trial.number, fields=fields, error=str(exc)[:200]))
            return OVER_CAP_PENALTY * 2
        gap = avg_gap(validation_metrics(result.model, scoring), retrain_validation)
        seconds = time.perf_counter() - start
        over = result.rte > cost_cap_s
        history.append(dict(number=trial.number, fields=fields, gap=gap, rte=result.rte, seconds=seconds,
                            over_cap=over))
        print(f"    {method} trial {trial.number}: gap {gap:.2f}  RTE {result.rte:.1f}s"
              f"{'  OVER CAP' if over else ''}  {fields}", flush=True)
        return gap + OVER_CAP_PENALTY if over else gap

    # a third of the trials sample at random before TPE models the rest (Optuna's default of 10 random
    # start-up trials would leave a budget of 8 to 12 trials almost entirely random)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=max(2, trials // 3))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    chosen = base_config.replace(**space(optuna.trial.FixedTrial(best.params)))
    feasible = best.value < OVER_CAP_PENALTY
    return dict(config=chosen.to_dict(), validation_gap=best.value if feasible else math.nan,
                feasible=feasible, trials=history)
