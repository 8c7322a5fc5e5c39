"""Tune methods of one cell with the shared protocol (``tuning.py``) and nothing else: no
reported seed runs. Writes ``benchmarks/results/tuning_<cell>_<objective>.json``, each method's
chosen config and every trial; ``instrument.py --configs`` reads it.

Every method gets the same trials, tuning seeds and cost cap. Each method's record is cached
under ``benchmarks/.cache``, so methods can be tuned by separate processes (``--out`` elsewhere)
and gathered by a last run over all of them, which reads the cache.

    python -m benchmarks.quality.tune_cell --regime memorise --forget random:0.1 --objective margin
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from benchmarks.harness import DEFAULT_CIFAR10, REPO, command_line, environment, provenance, write_json
from benchmarks.quality.cells import CACHE, REGIMES, cache_tag, cell_name, load_regime, tuning_seed
from benchmarks.quality.tuning import OBJECTIVES, tune_method

from wsscl_fast.checkpoint import atomic_write_bytes
from wsscl_fast.methods import UNLEARNING_METHODS


def record_path(args, method: str, base_config) -> Path:
    """Where one method's tuning record is cached: the cell, objective, budget and base config."""
    key = dict(cell=cell_name(args.regime, args.forget), forget=args.forget, objective=args.objective,
               trials=args.trials, seeds=args.tune_seeds, cost_cap=args.cost_cap, method=method,
               base=base_config.to_dict())
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return CACHE / "tuning" / f"{key['cell']}-{args.objective}-{method}-{digest}.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", choices=sorted(REGIMES), required=True)
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--methods", default=",".join(UNLEARNING_METHODS))
    parser.add_argument("--objective", choices=OBJECTIVES, default="margin")
    parser.add_argument("--trials", type=int, default=8, help="Optuna trials per method")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100], help="never reported")
    parser.add_argument("--cost-cap", type=float, default=0.5, help="a trial's work, as a fraction of Retrain's")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10), help="CIFAR-10 (the memorising regime)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if any(seed < 100 for seed in args.tune_seeds):
        parser.error(f"--tune-seeds {args.tune_seeds}: seeds under 100 are the reported ones (instrument: 0-7)")
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(UNLEARNING_METHODS))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; expected some of {UNLEARNING_METHODS}")

    measured_with = environment()
    bundle, recipe, configs = load_regime(args)
    tag = cache_tag(args.regime)
    seeds = None  # built on the first method that is not cached
    records = {}
    for method in methods:
        path = record_path(args, method, configs[method])
        if path.exists():
            records[method] = json.loads(path.read_text())
            print(f"{method}: cached ({path.name})", flush=True)
            continue
        seeds = seeds or [tuning_seed(args, bundle, recipe, configs, seed, tag) for seed in args.tune_seeds]
        records[method] = dict(environment=environment(), **tune_method(
            method, configs[method], seeds, trials=args.trials, cost_cap=args.cost_cap, objective=args.objective))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(json.dumps(records[method], indent=2, default=str).encode(), path)
        print(f"{method}: {args.objective} {records[method]['score']:.3f} "
              f"(runner-up {records[method]['margin_to_runner_up']:.3f} behind)", flush=True)
    command = command_line(__spec__.name, argv)
    name = f"tuning_{cell_name(args.regime, args.forget)}_{args.objective}"
    write_json(dict(title=f"{args.regime} regime, forgetting {args.forget}: every method tuned on the {args.objective} "
                          f"objective ({args.trials} trials, seeds {args.tune_seeds}, cost cap {args.cost_cap})",
                    environment=measured_with, provenance=provenance(measured_with, command), command=command,
                    regime=args.regime, forget=args.forget, objective=args.objective, trials_per_method=args.trials,
                    tune_seeds=args.tune_seeds, cost_cap_work_fraction=args.cost_cap,
                    configs={m: r["config"] for m, r in records.items()}, methods=records),
               Path(args.out) / f"{name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
