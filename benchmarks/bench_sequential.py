"""Deletion requests one after another (wsscl_fast.sequential): after each request, every method's
Avg. Gap to a Retrain on the cumulative retain set, and its cost per request and in total.

Data: the embedded digits (a small CNN, CPU, seconds per request), the methods at their
default configs. Writes results/sequential_<random|classwise>.{json,png}.

    python -m benchmarks.bench_sequential --requests random:0.02x5
    python -m benchmarks.bench_sequential --requests class:3,5,7
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.harness import REPO, environment, write_json

from wsscl_fast.data import load_digits_bundle
from wsscl_fast.execution import Runtime
from wsscl_fast.recipes import recipe_for
from wsscl_fast.report import _save
from wsscl_fast.sequential import compare_sequential, sequential_requests
from wsscl_fast.training import train_model


def plot(rows: list[dict], methods: list[str], path, title: str) -> None:
    """Left: Avg. Gap after each request; right: cumulative run time (Retrain: one retraining)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=90)
    for i, m in enumerate(["retrain", *methods]):
        mine = [r for r in rows if r["method"] == m]
        k = [r["request"] for r in mine]
        if m != "retrain":
            left.plot(k, [r["gap"] for r in mine], marker="o", label=m, color=f"C{i}")
        right.plot(k, [r["cumulative_RTE"] for r in mine], marker="o", label=m, color=f"C{i}")
    left.set_xlabel("requests so far")
    left.set_ylabel("Avg. Gap to Retrain")
    right.set_xlabel("requests so far")
    right.set_ylabel("cumulative run time (s)")
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", default="random:0.02x5")
    parser.add_argument("--methods", default="ft,rl,salun,scrub,coun,wsscl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    measured_with = environment()
    bundle = load_digits_bundle(seed=args.seed)
    recipe = recipe_for(bundle)
    torch.manual_seed(args.seed)
    model = train_model(recipe.build_model(bundle), bundle.train, recipe.train, torch.device("cpu"), seed=args.seed,
                        progress=False)
    methods = [m for m in args.methods.split(",") if m]
    requests = sequential_requests(bundle, args.requests, seed=args.seed)
    rows = compare_sequential(model, bundle, requests, methods, recipe.method_configs, seed=args.seed,
                              runtime=Runtime(progress=False))
    for r in rows:
        print(f"request {r['request']}  {r['method']:8s} gap {r['gap']:6.2f}  RTE {r['RTE']:5.2f} s  "
              f"cumulative {r['cumulative_RTE']:6.2f} s")
    name = f"sequential_{'classwise' if args.requests.startswith('class') else 'random'}"
    title = f"digits, {len(requests)} requests ({args.requests}), default configs, seed {args.seed}"
    write_json(dict(environment=measured_with, title=title, requests=args.requests, methods=methods, rows=rows),
               Path(args.out) / f"{name}.json")
    plot(rows, methods, Path(args.out) / f"{name}.png", title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
