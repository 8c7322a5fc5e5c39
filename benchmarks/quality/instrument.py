"""The per-example instrument: every method's distance to retrained oracles, with intervals.

For one cell (regime x forget spec; ``benchmarks/quality/ensembles.py`` trains and caches its n
originals and n oracles), each method unlearns each original i (seed i) with the configs
tuned by the quality bench (``benchmarks/results/quality_<regime>_<scenario>.json``, on the Avg.
Gap) or, with ``--configs``, by another tuning (``tune_cell.py``, e.g. on the margin objective). Then:

- KLoM per sample (``wsscl_fast.metrics.klom``) between the method's models and the oracles,
  cross-fitted at n/2 a side (the first half of one against the second half of the other, and
  back), on the forget set, a fixed sample of the retain set and the scoring half of the
  validation split (the methods calibrate on the other half), summarised by mean and p95;
  the headline is the mean of the three splits' means;
- the NeurIPS 2023 challenge score on the forget set (RA on the retain sample, TA on the
  validation scoring half);
- 95% intervals of KLoM over random half-splits of the models (redraws without replacement: a
  redraw with replacement repeats models, which biases a KL between small ensembles upward);
  they show how far the number depends on which models meet which, not the full variance of a
  fresh set of models. Method-vs-method differences are paired (model i of both comes from
  original i, so both are split alike; one oracle split serves both), and a sentence says
  "lower" only when the paired interval excludes 0; a WSS-CL variant (``--set wsscl.FIELD=VALUE``)
  is also set against the tuned config's runs on the same originals. The challenge score's
  interval is a bootstrap over models with replacement;
- the noise floor: KLoM between the two halves of the oracles, at the same n/2 a side as every
  other row; the untouched original's forget-set KLoM must be at least 5x the floor's, or the
  cell says the instrument cannot separate it;
- the cost: RTE in seconds and work in sample-passes (``wsscl_fast.work``), as a fraction of
  Retrain's work.

    python -m benchmarks.quality.instrument --regime generalise --forget random:0.1 --models 8
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

from benchmarks.quality.cells import CACHE, REGIMES, cell_name, tuned_configs
from benchmarks.quality.ensembles import Cell, load_cell, original, train_ensembles
from benchmarks.harness import DEFAULT_CIFAR10, REPO, command_line, environment, provenance, write_json

from wsscl_fast.api import unlearn
from wsscl_fast.checkpoint import atomic_save
from wsscl_fast.data import dataset_labels
from wsscl_fast.execution import Runtime
from wsscl_fast.methods import UNLEARNING_METHODS
from wsscl_fast.recipes import apply_overrides
from wsscl_fast.metrics import bootstrap, challenge_score, interval, klom, logits_on, margins, summarize, verdict
from wsscl_fast.work import retrain_work

SPLITS = ("forget", "retain", "validation")
FLOOR_FACTOR = 5.0  #: the original must score this many times the oracle floor
#: histogram bins of KLoM at 8 models a side: in a synthetic study (docs/experiments/2026-12-03-instrument.md)
#: 2 bins separate a 2-sigma shift from the floor 15x, 20 bins (the paper's, at 100 models) 1.3x
DEFAULT_BINS = 2


def validation_halves(cell: Cell) -> tuple[list[int], list[int]]:
    """(calibration positions, scoring positions) in the validation split: a seeded half each."""
    order = torch.randperm(len(cell.points["validation"]), generator=torch.Generator().manual_seed(0)).tolist()
    return sorted(order[::2]), sorted(order[1::2])


def unlearned_run(cell: Cell, method: str, config, seed: int) -> dict:
    """Logits of original ``seed`` unlearned by ``method`` (seed ``seed``), with its RTE and work
    (cached under a digest of its config, so that runs of two configs, a variant and the tuned
    one, are kept side by side)."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / "unlearned" / f"{cell.key}-{method}-{digest}-s{seed}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    calibration, _ = validation_halves(cell)
    holdout = torch.utils.data.Subset(cell.points["validation"], calibration)
    model, _ = original(cell, seed)
    result = unlearn(model, cell.scenario.forget, cell.scenario.retain, method, config, holdout=holdout, seed=seed,
                     runtime=Runtime(progress=False))
    run = {"logits": {split: logits_on(result.model, data) for split, data in cell.points.items()},
           "rte": result.rte, "work": result.info["work"]["sample_passes"], "timings": dict(result.timings),
           "config": config.to_dict(), "state_dict": result.model.state_dict()}
    atomic_save(run, path)
    return run


def stored_logits(cell: Cell, name: str) -> dict:
    return torch.load(CACHE / "logits" / f"{cell.key}-{name}.pt", weights_only=True)


def ensemble_margins(cell: Cell, runs: list[dict], scoring: list[int]) -> dict:
    """{split: (models, samples) margins} of an ensemble's logits (validation: the scoring half)."""
    out = {}
    for split in SPLITS:
        labels = dataset_labels(cell.points[split])
        logits = torch.stack([run[split] for run in runs])
        if split == "validation":
            logits, labels = logits[:, scoring], labels[scoring]
        out[split] = margins(logits, labels)
    return out


def accuracy(margin: torch.Tensor) -> float:
    """Mean accuracy over models, in %: a sample is right when its margin is positive."""
    return 100.0 * float((margin > 0).double().mean())


def cross_klom(u_first: torch.Tensor, u_second: torch.Tensor, o_first: torch.Tensor, o_second: torch.Tensor,
               bins: int) -> torch.Tensor:
    """Per-sample KLoM at n/2 models a side, cross-fitted: the first half of the unlearned models
    against the second half of the oracles, and the second against the first, averaged. The floor
    (oracles against oracles) has the same sample sizes, so the two compare like with like."""
    return (klom(u_first, o_second, bins) + klom(u_second, o_first, bins)) / 2


def stacked(ensemble: dict) -> torch.Tensor:
    """The splits side by side, (models, samples), so that one redraw covers all three."""
    return torch.cat([ensemble[s] for s in SPLITS], 1)


def halves(models: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h = models.shape[0] // 2
    return models[:h], models[h:]


def headline_of(per_sample: torch.Tensor, sizes: list[int]) -> float:
    """Mean over the three splits of the mean per-sample KLoM."""
    return sum(float(part.mean()) for part in per_sample.split(sizes)) / len(SPLITS)


def split_stats(per_sample: torch.Tensor, sizes: list[int]) -> dict:
    return {split: summarize(part) for split, part in zip(SPLITS, per_sample.split(sizes))}


def score_ensemble(ens: dict, oracles: dict, bins: int, resamples: int, seed: int) -> dict:
    """Cross-fitted KLoM per split and its headline, with a 95% interval over random half-splits of
    both ensembles; the challenge score (n against n), with a 95% bootstrap interval over models."""
    sizes = [ens[s].shape[1] for s in SPLITS]

    def statistic(u, o):
        return headline_of(cross_klom(*halves(u), *halves(o), bins), sizes)

    per_sample = cross_klom(*halves(stacked(ens)), *halves(stacked(oracles)), bins)
    draws = bootstrap(statistic, [[stacked(ens)], [stacked(oracles)]], resamples, seed, replace=False)
    challenge = challenge_score(ens["forget"], oracles["forget"],
                                (accuracy(ens["retain"]), accuracy(oracles["retain"])),
                                (accuracy(ens["validation"]), accuracy(oracles["validation"])))
    challenge_draws = bootstrap(
        lambda uf, ur, uv, of, orr, ov: challenge_score(uf, of, (accuracy(ur), accuracy(orr)),
                                                        (accuracy(uv), accuracy(ov)))["score"],
        [[ens["forget"], ens["retain"], ens["validation"]], [oracles["forget"], oracles["retain"],
                                                              oracles["validation"]]], resamples, seed)
    return {"klom": headline_of(per_sample, sizes), "klom_ci": interval(draws), "splits": split_stats(per_sample, sizes),
            "challenge": challenge, "challenge_ci": interval(challenge_draws),
            "UA": 100 - accuracy(ens["forget"]), "RA": accuracy(ens["retain"]), "VA": accuracy(ens["validation"])}


def score_floor(oracles: dict, bins: int, resamples: int, seed: int) -> dict:
    """The oracles' first half against their second, both ways: the KLoM that models which
    differ only in their training seed show at this n (the noise floor), over random half-splits."""
    sizes = [oracles[s].shape[1] for s in SPLITS]

    def statistic(o):
        first, second = halves(o)
        return headline_of(cross_klom(first, second, first, second, bins), sizes)

    first, second = halves(stacked(oracles))
    per_sample = cross_klom(first, second, first, second, bins)
    draws = bootstrap(statistic, [[stacked(oracles)]], resamples, seed, replace=False)
    return {"klom": headline_of(per_sample, sizes), "klom_ci": interval(draws), "splits": split_stats(per_sample, sizes)}


def paired_difference(a: dict, b: dict, oracles: dict, bins: int, resamples: int, seed: int) -> dict:
    """headline(a) - headline(b) over random half-splits, paired: model i of a and of b come from
    original i, so they are split together, and one oracle split serves both; its verdict for a."""
    sizes = [a[s].shape[1] for s in SPLITS]

    def difference(x, y, o):
        return (headline_of(cross_klom(*halves(x), *halves(o), bins), sizes)
                - headline_of(cross_klom(*halves(y), *halves(o), bins), sizes))

    draws = bootstrap(difference, [[stacked(a), stacked(b)], [stacked(oracles)]], resamples, seed, replace=False)
    ci = interval(draws)
    return {"difference": difference(stacked(a), stacked(b), stacked(oracles)), "ci": ci, "verdict": verdict(ci)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", choices=sorted(REGIMES), required=True)
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--models", type=int, default=8, help="originals, oracles and unlearned models per method")
    parser.add_argument("--methods", default=",".join(UNLEARNING_METHODS))
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help="KLoM histogram bins")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap redraws")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                        help="change a tuned config (a variant to measure); the result needs --name")
    parser.add_argument("--configs", default=None, metavar="JSON",
                        help="the tuned configs (default: the quality bench's file for the cell; e.g. a tune_cell.py "
                             "result); the result needs --name")
    parser.add_argument("--name", default=None, help="suffix of the result file: instrument_<cell>_<name>.json")
    args = parser.parse_args(argv)
    if (args.set or args.configs) and not args.name:
        parser.error("--set and --configs measure other configs: give them a --name, so that the cell's own result "
                     "is not replaced")
    if args.models < 4 or args.models % 2:
        parser.error("--models must be even and >= 4 (the floor compares two halves of the oracles)")
    measured_with = environment()
    cell = load_cell(args.regime, args.forget, args.data_root)
    tuned, config_source = tuned_configs(cell.regime, cell.forget, args.configs)
    methods = [m for m in args.methods.split(",") if m]
    configs = apply_overrides(tuned, args.set, used=tuple(methods))
    n = args.models
    runs = {method: [] for method in methods}
    for seed in range(n):  # seed-major: original i is trained (or loaded) once, then every method unlearns it
        for method in methods:
            start = time.perf_counter()
            runs[method].append(unlearned_run(cell, method, configs[method], seed))
            print(f"{cell.key}: {method} model {seed} ready ({time.perf_counter() - start:.0f} s)", flush=True)
    train_ensembles(cell, n)  # the originals' and oracles' logits

    _, scoring = validation_halves(cell)
    oracles = ensemble_margins(cell, [stored_logits(cell, f"oracle-s{i}") for i in range(n)], scoring)
    originals = ensemble_margins(cell, [stored_logits(cell, f"original-s{i}") for i in range(n)], scoring)
    ensembles = {m: ensemble_margins(cell, [r["logits"] for r in runs[m]], scoring) for m in methods}
    floor = score_floor(oracles, args.bins, args.resamples, seed=1)
    rows = {"original": score_ensemble(originals, oracles, args.bins, args.resamples, seed=2)}
    full_work = retrain_work(cell.configs["retrain"].epochs, len(cell.scenario.retain))
    for method in methods:
        rows[method] = score_ensemble(ensembles[method], oracles, args.bins, args.resamples, seed=3)
        rows[method]["rte_s"] = sum(r["rte"] for r in runs[method]) / n
        stages = sorted({stage for r in runs[method] for stage in r.get("timings", {})})
        rows[method]["stage_seconds"] = {stage: sum(r.get("timings", {}).get(stage, 0.0) for r in runs[method]) / n
                                         for stage in stages}
        rows[method]["work_fraction_of_retrain"] = sum(r["work"] for r in runs[method]) / n / full_work
    comparisons = {}
    if "wsscl" in methods:
        for other in [m for m in methods if m != "wsscl"]:
            comparisons[other] = paired_difference(ensembles["wsscl"], ensembles[other], oracles, args.bins,
                                                   args.resamples, seed=4)
        comparisons["original"] = paired_difference(ensembles["wsscl"], originals, oracles, args.bins,
                                                    args.resamples, seed=4)
        if configs["wsscl"] != tuned["wsscl"]:  # a variant: against the tuned config too, on the same originals
            tuned_runs = [unlearned_run(cell, "wsscl", tuned["wsscl"], seed) for seed in range(n)]
            comparisons["wsscl (tuned config)"] = paired_difference(
                ensembles["wsscl"], ensemble_margins(cell, [r["logits"] for r in tuned_runs], scoring), oracles,
                args.bins, args.resamples, seed=4)
    # forgetting shows on the forget set: the original's retain and validation margins are the
    # oracles' by construction, so the test compares the forget split's KLoM with the floor's
    separable = rows["original"]["splits"]["forget"]["mean"] >= FLOOR_FACTOR * floor["splits"]["forget"]["mean"]
    name = f"instrument_{cell_name(args.regime, args.forget)}" + (f"_{args.name}" if args.name else "")
    command = command_line(__spec__.name, argv)
    payload = dict(title=f"{args.regime} regime, forgetting {args.forget}: KLoM to {n} oracles, {n} models per method",
                   environment=measured_with, provenance=provenance(measured_with, command), command=command,
                   models=n, bins=args.bins, resamples=args.resamples, configs_from=config_source, overrides=args.set,
                   forget_size=len(cell.scenario.forget), retain_points=len(cell.points["retain"]),
                   validation_points=len(scoring), retrain_work=full_work,
                   floor=floor, floor_factor=FLOOR_FACTOR, separable=separable, rows=rows,
                   oracle_accuracy={"UA": 100 - accuracy(oracles["forget"]), "RA": accuracy(oracles["retain"]),
                                    "VA": accuracy(oracles["validation"])},
                   wsscl_against=comparisons)
    write_json(payload, Path(args.out) / f"{name}.json")
    print(json.dumps({m: round(r["klom"], 3) for m, r in rows.items()}), f"floor {floor['klom']:.3f}",
          "separable" if separable else "NOT separable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
