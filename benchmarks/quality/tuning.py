"""One tuning protocol for every unlearning method, as the field runs it.

- The same number of Optuna trials (TPE, seeded) for every method, WSS-CL included, each over
  its own knobs (:data:`SEARCH_SPACES`): the learning rate on a log scale in [1e-4, 1e-1] and
  the epochs for all, plus the method's own weights.
- The same cost cap for every trial, counted in work, not seconds: the samples a run passes
  through the model (``wsscl_fast.work``), as a fraction of Retrain's. A trial over the cap
  counts as failed (its score is the penalty below), so no method buys its gap with compute,
  and the verdict does not move with the machine's load. RTE in seconds is still recorded.
- Trials are scored without the test set, on a scoring half of the validation split standing in
  for it; the methods calibrate on the other half (their ``holdout``), here and in the reported
  runs. Two objectives (:data:`OBJECTIVES`), each against the tuning seed's Retrain:
  ``"gap"``, the Avg. Gap of UA, RA, TA (on the scoring half) and MIA, what the quality tables
  report; ``"margin"``, the per-example reading of the instrument (``instrument.py``) with one
  Retrain in place of its oracle ensemble: per split (the forget set, a seeded sample of
  :data:`RETAIN_POINTS` retain samples, the scoring half), the mean over samples of
  ``|m_model - m_Retrain|``, ``m = z_y - logsumexp_{j != y} z_j``; the score is the mean of the
  three splits' means, as the instrument's headline is.
- A trial's score is the mean over several tuning seeds (each a fresh forget set, original and
  Retrain), never reported; the record keeps each seed's score, so the objective's own
  seed-to-seed spread can be set beside the differences between trials that it decides.

Optuna is a benchmark dependency (``pip install optuna``), not a library one.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Subset

from wsscl_fast.api import unlearn
from wsscl_fast.data import ForgetScenario, dataset_labels
from wsscl_fast.execution import Runtime
from wsscl_fast.metrics import avg_gap, evaluate_unlearning, logits_on, margins

OVER_CAP_PENALTY = 1e6  #: the score of a trial over the cost cap (plus its work): above any score of either objective
LR_RANGE = (1e-4, 1e-1)
RETAIN_POINTS = 1000  #: retain samples (a seeded draw) on which the margin objective is measured


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


def distance_points(run_on: ForgetScenario, scoring: ForgetScenario) -> dict:
    """{split: Dataset} the margin objective is measured on: the forget set, a seeded draw of
    :data:`RETAIN_POINTS` retain samples, and the whole scoring half (both class groups)."""
    rows = torch.randperm(len(run_on.retain), generator=torch.Generator().manual_seed(0))[:RETAIN_POINTS]
    validation = (scoring.test if scoring.forgotten_test is None
                  else ConcatDataset([scoring.test, scoring.forgotten_test]))
    return {"forget": run_on.forget, "retain": Subset(run_on.retain, rows.tolist()), "validation": validation}


def split_margins(model, points: dict) -> dict:
    """{split: (samples,) margins of ``model``} on :func:`distance_points`."""
    return {split: margins(logits_on(model, data), dataset_labels(data)) for split, data in points.items()}


def margin_distance(model_margins: dict, retrain_margins: dict) -> float:
    """Mean over the splits of mean_i |m_model(i) - m_Retrain(i)|."""
    return sum(float((model_margins[s] - retrain_margins[s]).abs().mean()) for s in retrain_margins) / len(retrain_margins)


@dataclass
class TuningSeed:
    """One tuning seed: its original, the scenario the methods run on, the scenario trials are
    scored on, Retrain's validation metrics and Retrain's work (sample-passes); for the margin
    objective also the points it is measured on and Retrain's margins there."""
    seed: int
    original: nn.Module
    run_on: ForgetScenario
    scoring: ForgetScenario
    retrain_validation: dict
    retrain_work: int
    points: dict | None = None
    retrain_margins: dict | None = None


def seed_score(model, s: TuningSeed, objective: str) -> float:
    """The trial score of ``model`` on tuning seed ``s`` under ``objective`` (:data:`OBJECTIVES`)."""
    if objective == "gap":
        return avg_gap(validation_metrics(model, s.scoring), s.retrain_validation)
    if s.retrain_margins is None:
        raise ValueError(f"the margin objective needs Retrain's margins on tuning seed {s.seed} (retrain_margins)")
    return margin_distance(split_margins(model, s.points), s.retrain_margins)


OBJECTIVES = ("gap", "margin")


def score_config(method: str, config, seeds: list[TuningSeed], cost_cap: float, objective: str = "gap") -> dict:
    """One trial: ``config`` run on every tuning seed. Returns its score (the mean of the seeds'
    scores under ``objective``; NaN when over the cap), the per-seed scores, RTEs, the work as a
    fraction of Retrain's (the largest over the seeds) and whether it ran over ``cost_cap``.
    Raises what ``unlearn`` raises."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    per_seed, rtes, work_fractions = [], [], []
    for s in seeds:
        result = unlearn(s.original, s.run_on.forget, s.run_on.retain, method, config, holdout=s.run_on.holdout,
                         seed=s.seed, runtime=Runtime(device="cpu", progress=False))
        work_fractions.append(result.info["work"]["sample_passes"] / s.retrain_work)
        rtes.append(result.rte)
        if work_fractions[-1] > cost_cap:  # over on one seed is over: the rest need not run
            break
        per_seed.append(seed_score(result.model, s, objective))
    over = max(work_fractions) > cost_cap
    return dict(score=math.nan if over else statistics.mean(per_seed), per_seed=per_seed, rte=rtes,
                work_fraction=max(work_fractions), over_cap=over)


def tune_method(method: str, base_config, seeds: list[TuningSeed], *, trials: int, cost_cap: float,
                objective: str = "gap", sampler_seed: int = 0, space=None) -> dict:
    """Tune ``method`` over ``space`` (default: its :data:`SEARCH_SPACES` entry); a trial's score
    is :func:`score_config` over ``seeds`` under ``objective``, failed when its work on a seed
    exceeds ``cost_cap`` x that seed's Retrain work. Returns the chosen config (as a dict), its
    score, its per-seed scores and their standard error, the margin to the runner-up trial, and
    every trial."""
    import optuna

    if not seeds:
        raise ValueError("tune_method needs at least one tuning seed")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space or SEARCH_SPACES[method]
    history = []

    def trial_score(trial) -> float:
        fields = space(trial)
        try:
            scored = score_config(method, base_config.replace(**fields), seeds, cost_cap, objective)
        # a diverged run (a NaN or inf loss: FloatingPointError) is a failed trial, not a crash
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            history.append(dict(number=trial.number, fields=fields, error=str(exc)[:200]))
            return OVER_CAP_PENALTY * 2
        history.append(dict(number=trial.number, fields=fields, **scored))
        work = f"work {scored['work_fraction']:.2f} x Retrain"
        print(f"    {method} trial {trial.number}: " + (f"{work}, OVER CAP" if scored["over_cap"] else
              f"{objective} {scored['score']:.3f} (per seed {', '.join(f'{g:.3f}' for g in scored['per_seed'])}), "
              f"{work}") + f"  {fields}", flush=True)
        return OVER_CAP_PENALTY + scored["work_fraction"] if scored["over_cap"] else scored["score"]

    # a third of the trials sample at random before TPE models the rest (Optuna's default of 10 random
    # start-up trials would leave a budget of 8 to 12 trials almost entirely random)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=max(2, trials // 3))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(trial_score, n_trials=trials)
    best = study.best_trial
    chosen = base_config.replace(**space(optuna.trial.FixedTrial(best.params)))
    feasible = best.value < OVER_CAP_PENALTY
    record = next((h for h in history if h["number"] == best.number and "score" in h), {"per_seed": []})
    scores = sorted(h["score"] for h in history if not math.isnan(h.get("score", math.nan)))
    per_seed = record["per_seed"]
    spread = statistics.stdev(per_seed) / math.sqrt(len(per_seed)) if len(per_seed) > 1 else math.nan
    return dict(config=chosen.to_dict(), objective=objective, score=best.value if feasible else math.nan,
                feasible=feasible, per_seed_scores=per_seed, seed_standard_error=spread,
                margin_to_runner_up=scores[1] - scores[0] if len(scores) > 1 else math.nan, trials=history)
