"""CPU-sized real-data quality benchmark: every method's Avg. Gap to Retrain, mean +- std over seeds.

Data: a seeded CIFAR-10 subset from ../shared (default 5,000 train / 1,000 test images).
Model: a small CNN trained *without* augmentation so that it memorises its training set
(train accuracy >= 95%): the regime where forgetting is measurable. Scenario: 10% random
forgetting (or --forget class:0), one original model and one Retrain per seed.
The originals and Retrains are cached under benchmarks/.cache so that re-runs that only
change method settings (--set) skip the training.

    python -m benchmarks.bench_quality_cpu                 # about 30 minutes on 2 cores
    python -m benchmarks.bench_quality_cpu --seeds 0 --set wsscl.contrastive_weight=1.0
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import ConcatDataset, Subset

from benchmarks.harness import DEFAULT_CIFAR10, REPO, environment, print_verdict, wsscl_vs_salun

from wsscl_fast.api import UnlearnResult, compare
from wsscl_fast.audit import Audit, MembershipReference, reference_halves
from wsscl_fast.checkpoint import atomic_save
from wsscl_fast.data import dataset_names, load_cifar10_bundle, make_scenario
from wsscl_fast.methods import UNLEARNING_METHODS
from wsscl_fast.metrics import predict_split
from wsscl_fast.recipes import apply_overrides, recipe_for
from wsscl_fast.report import write_report
from wsscl_fast.training import train_model

CACHE = REPO / "benchmarks" / ".cache" / "quality_cpu"


def cached_training(key: str, build, train_data, config, seed: int, desc: str):
    """Train (or load from the cache) a model; returns (model, training seconds)."""
    path = CACHE / f"{key}.pt"
    model = build()
    if path.exists():
        blob = torch.load(path, weights_only=True)
        model.load_state_dict(blob["state_dict"])
        return model.eval(), blob["seconds"]
    torch.manual_seed(seed)
    start = time.perf_counter()
    train_model(model, train_data, config, torch.device("cpu"), seed=seed, progress=True, desc=desc)
    seconds = time.perf_counter() - start
    atomic_save({"state_dict": model.state_dict(), "seconds": seconds}, path)
    return model.eval(), seconds


def membership_references(args, bundle, recipe, tag: str):
    """The audit, with ``args.references`` reference models trained (or loaded from the cache)
    like the original on complementary random halves of the pool = train + validation splits,
    so that the validation samples, which no original saw, calibrate the membership test.
    Returns (Audit, total training seconds of the references)."""
    pool = ConcatDataset([bundle.train, bundle.validation])
    members = reference_halves(len(pool), args.references, seed=1234)
    models, seconds = [], 0.0
    for r, half in enumerate(members):
        model, took = cached_training(f"reference-{tag}-v{args.validation_size}-r{r}of{args.references}",
                                      lambda: recipe.build_model(bundle), Subset(pool, half.nonzero().flatten().tolist()),
                                      recipe.train, 100 + r, f"reference {r}")
        models.append(model)
        seconds += took
    return Audit(references=MembershipReference(models, dataset_names(pool), members)), seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--validation-size", type=int, default=500,
                        help="training-pool images outside the train subset: the methods' holdout (never the test set)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of the original and Retrain")
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--methods", default=",".join(UNLEARNING_METHODS))
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE")
    parser.add_argument("--variant", action="append", default=[], metavar="METHOD:FIELD=VALUE[,FIELD=VALUE]",
                        help="an extra row: METHOD with these fields changed (an ablation)")
    parser.add_argument("--references", type=int, default=8,
                        help="reference models of the audit's membership test (even; 0: no audit)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--name", default="quality_cpu")
    args = parser.parse_args(argv)

    bundle = load_cifar10_bundle(args.data_root, args.train_size, args.test_size, seed=0,
                                 validation_size=args.validation_size)
    recipe = recipe_for(bundle, arch="small_cnn", epochs=args.epochs, width=args.width)
    # no augmentation, small batches: the original memorises its training set (train accuracy >= 95%);
    # the unlearning methods train on the same un-augmented batches (WSS-CL's views stay augmented)
    no_augmentation = dict(aug_pad=0, aug_flip=False)
    recipe.train = recipe.train.replace(batch_size=64, lr=0.05, **no_augmentation)
    configs = {name: config.replace(**no_augmentation) for name, config in recipe.method_configs.items()}
    configs = apply_overrides({**configs, "retrain": recipe.train}, args.set)
    methods = [m for m in args.methods.split(",") if m]
    runs = [(name, name, configs[name]) for name in methods]  # (row label, method, config)
    for variant in args.variant:
        method, _, changes = variant.partition(":")
        label = f"{method} [{changes}]"
        runs.append((label, method, apply_overrides(configs, changes.split(","), default_method=method)[method]))
    tag = f"n{args.train_size}-w{args.width}-e{args.epochs}"
    audit, reference_seconds = membership_references(args, bundle, recipe, tag) if args.references else (None, 0.0)
    rows, originals = [], []
    for seed in args.seeds:
        original, train_seconds = cached_training(f"original-{tag}-s{seed}", lambda: recipe.build_model(bundle),
                                                  bundle.train, recipe.train, seed, f"original seed {seed}")
        scenario = make_scenario(bundle, args.forget, seed=seed)
        originals.append(dict(seed=seed, train_accuracy=predict_split(original, bundle.train).accuracy,
                              test_accuracy=predict_split(original, bundle.test).accuracy, train_seconds=train_seconds))
        print(f"seed {seed}: original train acc {originals[-1]['train_accuracy']:.1f}%, "
              f"test acc {originals[-1]['test_accuracy']:.1f}%")
        retrain_model, retrain_seconds = cached_training(
            f"retrain-{tag}-{args.forget.replace(':', '')}-s{seed}", lambda: recipe.build_model(bundle),
            scenario.retain, configs["retrain"], seed, f"retrain seed {seed}")
        retrain = UnlearnResult(retrain_model, "retrain", configs["retrain"], retrain_seconds, {})
        seed_rows = compare(original, scenario, [(label, name) for label, name, _ in runs],
                            {"retrain": configs["retrain"], **{label: config for label, _, config in runs}},
                            seed=seed, audit=audit or False, retrain=retrain)
        for row in seed_rows:
            print(f"  {row['method']:10s} gap {row['gap']:.2f}  " + "  ".join(f"{k} {row[k]:.1f}"
                                                                       for k in ("UA", "RA", "TA", "MIA")))
        rows += seed_rows
    verdict = wsscl_vs_salun(rows)
    title = (f"CIFAR-10 subset ({args.train_size} train), small CNN width {args.width}: forgetting {args.forget}, "
             f"seeds {args.seeds}")
    table = write_report(rows, args.out, args.name, title, extra=dict(
        environment=environment(), originals=originals, verdict=verdict, args=vars(args),
        audit_cost=dict(reference_models=args.references, reference_training_seconds=reference_seconds,
                        seconds_per_audited_model=sum(r.get("audit_seconds", 0) for r in rows) / len(rows)),
        configs={label: config.to_dict() for label, _, config in [("retrain", "retrain", configs["retrain"]), *runs]}))
    print(table)
    print_verdict(verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
