"""WSS-CL's readings of its contrastive term, each tuned like every method.

For one quality-bench cell, on its tuning seeds only (never a reported seed), each reading gets
the protocol of benchmarks/quality/tuning.py: the same Optuna trials, the same cap in work and the same
validation-half score as the cell's tuned methods. ``default`` (our reading as the cell tuned it)
is tuned again in the same run; the cell's own tuning record
(benchmarks/results/quality_<cell>.json) is reported beside it.

Readings (each on top of WSS-CL's search space):
- ``default``: the search space as the cell tuned it;
- ``other_classes``: a forget anchor's negatives are the retain samples of other classes only
  (random forgetting; in class-wise forgetting it equals the default);
- ``retain_pairs``: CoUn's SimCLR pairs on retain views beside the forget pairs, their weight searched;
- ``temperature``: the InfoNCE temperature searched too (0.05 to 1, log scale);
- ``without_term``: lambda fixed at 0, the rest searched: is the term worth its place once both are tuned?
- ``lambda_decay`` / ``lambda_ramp``: lambda decays linearly to 0 over stage 2, or ramps up from 0 to it;
- ``projection_head``: the term compares g(z), a 2-layer MLP head (D -> D -> 128) trained in stage 2;
- ``learned_scale``: the term compares s * z / |z| with the scale s learned in stage 2.

    python -m benchmarks.quality.wsscl_readings --regime memorise --forget random:0.1
"""
from __future__ import annotations

import argparse
import json

from benchmarks.quality.cells import REGIMES, cache_tag, cell_name, load_regime, tuning_seed
from benchmarks.harness import DEFAULT_CIFAR10, REPO, environment, write_json
from benchmarks.quality.tuning import SEARCH_SPACES, tune_method


def _with(fixed: dict | None = None, searched=None, drop: tuple = ()):
    """WSS-CL's search space with ``fixed`` fields, ``searched(trial)`` fields added and ``drop`` left out."""
    def space(trial):
        fields = {k: v for k, v in SEARCH_SPACES["wsscl"](trial).items() if k not in drop}
        return {**fields, **(searched(trial) if searched else {}), **(fixed or {})}
    return space


READINGS = {
    "default": _with(),
    "other_classes": _with(fixed=dict(contrastive_negatives="other_classes")),
    "retain_pairs": _with(searched=lambda t: dict(
        retain_pair_weight=t.suggest_float("retain_pair_weight", 0.01, 10.0, log=True))),
    "temperature": _with(searched=lambda t: dict(temperature=t.suggest_float("temperature", 0.05, 1.0, log=True))),
    "without_term": _with(fixed=dict(contrastive_weight=0.0), drop=("contrastive_weight",)),
    "lambda_decay": _with(fixed=dict(contrastive_schedule="decay")),
    "lambda_ramp": _with(fixed=dict(contrastive_schedule="ramp")),
    "projection_head": _with(fixed=dict(projection_dim=128)),
    "learned_scale": _with(fixed=dict(learn_feature_scale=True)),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", choices=sorted(REGIMES), default="memorise")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--readings", default=",".join(READINGS))
    parser.add_argument("--name", help="the results file's stem (default: wsscl_readings_<regime>_<scenario>)")
    args = parser.parse_args(argv)
    cell = cell_name(args.regime, args.forget)
    committed = json.loads((REPO / "benchmarks" / "results" / f"quality_{cell}.json").read_text())["tuning"]
    default = committed["methods"]["wsscl"]
    measured_with = environment()
    bundle, recipe, configs = load_regime(args)
    cap = committed.get("cost_cap_work_fraction")
    if cap is None:
        raise SystemExit(f"{cell}'s tuning record caps time, not work: re-tune the cell first (make bench-quality)")
    seeds, trials = default["seeds"], committed["trials_per_method"]
    tuning_seeds = [tuning_seed(args, bundle, recipe, configs, seed, cache_tag(args.regime)) for seed in seeds]
    results = {"committed": dict(validation_gap=default["validation_gap"], config=default["config"],
                                 source=f"benchmarks/results/quality_{cell}.json (the cell's tuning record)")}
    for name in args.readings.split(","):
        print(f"reading {name}: {trials} trials on tuning seeds {seeds}, cost cap {cap} x Retrain's work", flush=True)
        results[name] = tune_method("wsscl", configs["wsscl"], tuning_seeds, trials=trials, cost_cap=cap,
                                    space=READINGS[name])
        print(f"  {name}: validation gap {results[name]['validation_gap']:.2f}", flush=True)
    for name, record in results.items():
        print(f"{name:15s} validation gap {record['validation_gap']:.2f}")
    write_json(dict(environment=measured_with, cell=cell, tuning_seeds=seeds, trials=trials,
                    cost_cap_work_fraction=cap,
                    scored_on=committed["scored_on"], readings=results),
               REPO / "benchmarks" / "results" / f"{args.name or 'wsscl_readings_' + cell}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
