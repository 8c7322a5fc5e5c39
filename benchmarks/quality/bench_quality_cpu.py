"""CPU-sized real-data quality benchmark: every method's Avg. Gap to Retrain, mean +- std over seeds.

Two regimes (--regime), each a small CNN on 2 cores:
- ``memorise``: a seeded CIFAR-10 subset from ../shared (5,000 train / 1,000 test images),
  trained *without* augmentation, so that the original memorises its training set (train
  accuracy >= 95%, test about 63%): forgetting is easy to measure, Retrain's UA is about 36%.
- ``generalise``: Fashion-MNIST (Debian's dataset-fashion-mnist; 10,000 train / 2,000 test
  images) trained *with* augmentation, so that train and test accuracy are close (test >= 85%),
  as in the paper's regime: Retrain's UA at 10% random forgetting is close to 100 - TA.
Scenario: 10% random forgetting (or --forget class:0), one original and one Retrain per seed.

With ``--tune-trials N`` every unlearning method is first tuned with the same protocol
(benchmarks/quality/tuning.py: N Optuna trials each, the same cap in work, each trial scored on a
validation half of every one of --tune-seeds, which are never reported); the reported seeds then run the chosen configs.
Originals and Retrains are cached under benchmarks/.cache.

    python -m benchmarks.quality.bench_quality_cpu --regime memorise --tune-trials 8
    python -m benchmarks.quality.bench_quality_cpu --seeds 0 --set wsscl.contrastive_weight=1.0
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import ConcatDataset

from benchmarks.harness import (DEFAULT_CIFAR10, REPO, command_line, environment, print_verdict, provenance,
                                wsscl_vs_best_baseline)
from benchmarks.quality.cells import (CACHE, REGIMES, cache_tag, cell_name, load_regime,
                                      original_and_retrain, tuning_seed)
from benchmarks.quality.tuning import tune_method

from wsscl_fast.api import UnlearnResult, compare
from wsscl_fast.audit import Audit, MembershipReference, train_references
from wsscl_fast.checkpoint import atomic_save
from wsscl_fast.data import dataset_names
from wsscl_fast.methods import UNLEARNING_METHODS
from wsscl_fast.recipes import apply_overrides
from wsscl_fast.report import write_report

def membership_references(args, bundle, recipe, tag: str):
    """The audit, with ``args.references`` reference models (``audit.train_references``, cached)
    trained like the original on complementary random halves of the pool = train + validation
    splits, so that the validation samples, which no original saw, calibrate the membership test.
    Returns (Audit, total training seconds of the references)."""
    pool = ConcatDataset([bundle.train, bundle.validation])
    path = CACHE / f"references-{tag}-{args.references}.pt"
    if path.exists():
        blob = torch.load(path, weights_only=True)
        models = [recipe.build_model(bundle) for _ in blob["state_dicts"]]
        for model, state in zip(models, blob["state_dicts"]):
            model.load_state_dict(state)
        reference = MembershipReference([m.eval() for m in models], dataset_names(pool), blob["members"])
        return Audit(references=reference), blob["seconds"]
    start = time.perf_counter()
    reference = train_references(lambda: recipe.build_model(bundle), pool, recipe.train, args.references, seed=1234)
    seconds = time.perf_counter() - start
    atomic_save({"state_dicts": [m.state_dict() for m in reference.models], "members": reference.members,
                 "seconds": seconds}, path)
    return Audit(references=reference), seconds


def tune_all(args, bundle, recipe, configs, methods, tag) -> dict:
    """Tune every method of ``methods``, each trial scored on all tuning seeds; returns {method: tuning record}."""
    seeds = [tuning_seed(args, bundle, recipe, configs, seed, tag) for seed in args.tune_seeds]
    print(f"tuning on seeds {args.tune_seeds}: {args.tune_trials} trials per method, each scored on every seed; "
          f"cost cap {args.cost_cap} x Retrain's work", flush=True)
    tuned = {}
    for method in methods:
        tuned[method] = dict(seeds=args.tune_seeds, cost_cap_work_fraction=args.cost_cap, **tune_method(
            method, configs[method], seeds, trials=args.tune_trials, cost_cap=args.cost_cap))
        print(f"  {method}: validation gap {tuned[method]['score']:.2f} "
              f"(seed standard error {tuned[method]['seed_standard_error']:.2f}, "
              f"runner-up {tuned[method]['margin_to_runner_up']:.2f} behind)", flush=True)
    return tuned


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", choices=sorted(REGIMES), default="memorise")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10), help="CIFAR-10 (the memorising regime)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the reported seeds")
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--methods", default=",".join(UNLEARNING_METHODS))
    parser.add_argument("--tune-trials", type=int, default=0, help="Optuna trials per method (0: the configs as set)")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100, 101, 102],
                        help="each trial's score is its mean gap over these; never among --seeds")
    parser.add_argument("--cost-cap", type=float, default=0.5,
                        help="a trial's work cap (samples through the model), as a fraction of Retrain's")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE")
    parser.add_argument("--variant", action="append", default=[], metavar="METHOD:FIELD=VALUE[,FIELD=VALUE]",
                        help="an extra row: METHOD (as tuned) with these fields changed (an ablation)")
    parser.add_argument("--references", type=int, default=0,
                        help="reference models of the audit's membership test (even; 0: no audit)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--name", default=None, help="default: quality_<regime>_<random|classwise>")
    args = parser.parse_args(argv)
    if set(args.tune_seeds) & set(args.seeds):
        parser.error(f"--tune-seeds {args.tune_seeds} overlap the reported --seeds {args.seeds}")
    args.name = args.name or f"quality_{cell_name(args.regime, args.forget)}"

    measured_with = environment()  # the code version and machine at the start (edits made later do not count)
    bundle, recipe, configs = load_regime(args)
    configs = apply_overrides(configs, args.set)
    methods = [m for m in args.methods.split(",") if m]
    regime = REGIMES[args.regime]
    tag = cache_tag(args.regime)
    tuning = tune_all(args, bundle, recipe, configs, methods, tag) if args.tune_trials else {}
    for method, record in tuning.items():
        configs[method] = type(configs[method]).from_dict(record["config"])
    runs = [(name, name, configs[name]) for name in methods]  # (row label, method, config)
    for variant in args.variant:
        method, _, changes = variant.partition(":")
        label = f"{method} [{changes}]"
        runs.append((label, method, apply_overrides(configs, changes.split(","), default_method=method)[method]))
    audit, reference_seconds = membership_references(args, bundle, recipe, tag) if args.references else (None, 0.0)
    rows, originals = [], []
    for seed in args.seeds:
        original, accuracies, (run_on, _), retrain_model, retrain_seconds = original_and_retrain(
            args, bundle, recipe, configs, seed, tag)
        originals.append(accuracies)
        retrain = UnlearnResult(retrain_model, "retrain", configs["retrain"], retrain_seconds, {})
        seed_rows = compare(original, run_on, [(label, name) for label, name, _ in runs],
                            {"retrain": configs["retrain"], **{label: config for label, _, config in runs}},
                            seed=seed, audit=audit or False, retrain=retrain)
        for row in seed_rows:
            print(f"  {row['method']:10s} gap {row['gap']:.2f}  " + "  ".join(f"{k} {row[k]:.1f}"
                                                                       for k in ("UA", "RA", "TA", "MIA")), flush=True)
        rows += seed_rows
    verdict = wsscl_vs_best_baseline(rows, methods)
    title = (f"{args.regime} regime ({bundle.name}, {regime['train_size']} train), small CNN: forgetting "
             f"{args.forget}, seeds {args.seeds}" + (f", every method tuned ({args.tune_trials} trials)"
                                                     if tuning else ""))
    command = command_line(__spec__.name, argv)
    table = write_report(rows, args.out, args.name, title, provenance=provenance(measured_with, command), extra=dict(
        environment=measured_with, command=command,
        originals=originals, verdict=verdict, args=vars(args),
        tuning=dict(trials_per_method=args.tune_trials, seeds=args.tune_seeds, cost_cap_work_fraction=args.cost_cap,
                    scored_on="half of the validation split (the methods calibrate on the other half)",
                    methods=tuning) if tuning else None,
        audit_cost=dict(reference_models=args.references, reference_training_seconds=reference_seconds,
                        seconds_per_audited_model=sum(r.get("audit_seconds", 0) for r in rows) / len(rows)),
        configs={label: config.to_dict() for label, _, config in [("retrain", "retrain", configs["retrain"]), *runs]}))
    print(table)
    print_verdict(verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
