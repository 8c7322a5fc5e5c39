"""Deletion requests one after another (wsscl_fast.sequential): after each request, every method's
Avg. Gap to a Retrain on the cumulative retain set, and its cost per request and in total.

Data: the embedded digits (a small CNN, CPU, seconds per request), the methods at their
default configs; or, with ``--regime``, a quality-bench regime (its cached original of
``--seed``) with every method at its tuned config from that regime's committed quality results
(the random cell's for random requests, the class-wise cell's for class requests). Writes
results/sequential_[<regime>_]<random|classwise>.{json,md,png}.

    python -m benchmarks.quality.bench_sequential --requests random:0.02x5
    python -m benchmarks.quality.bench_sequential --requests class:3,5,7
    python -m benchmarks.quality.bench_sequential --regime generalise --requests class:0,1,2 --methods ft,rl,scrub,coun,wsscl
    python -m benchmarks.quality.bench_sequential --regime generalise --methods wsscl \
        --set wsscl.checkpoint_choice=holdout --name holdout    # a variant, beside the tuned run's file
"""
from __future__ import annotations

import argparse
import json

import torch

from benchmarks.quality.cells import REGIMES, cache_tag, cached_training, load_regime, scenario_name
from benchmarks.harness import DEFAULT_CIFAR10, REPO, command_line, environment, provenance

from wsscl_fast.data import load_digits_bundle
from wsscl_fast.execution import Runtime
from wsscl_fast.recipes import apply_overrides, recipe_for
from wsscl_fast.report import write_sequential_report
from wsscl_fast.sequential import compare_sequential, sequential_requests
from wsscl_fast.training import train_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", default="random:0.02x5")
    parser.add_argument("--methods", default="ft,rl,salun,scrub,coun,wsscl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regime", choices=sorted(REGIMES), default=None, help="default: digits, untuned")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10), help="CIFAR-10 (the memorising regime)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                        help="change a field of a method's config (a variant: needs --name)")
    parser.add_argument("--name", default=None, help="suffix of the result files: sequential_..._<name>")
    args = parser.parse_args(argv)
    if args.set and not args.name:
        parser.error("--set measures a variant: give it a --name, so that the tuned run's result is not replaced")
    measured_with = environment()
    scenario = scenario_name(args.requests)
    methods = [m for m in args.methods.split(",") if m]
    if args.regime:
        bundle, recipe, configs = load_regime(args)
        tuned = json.loads((REPO / "benchmarks" / "results" / f"quality_{args.regime}_{scenario}.json").read_text())
        configs.update({m: type(configs[m]).from_dict(tuned["configs"][m]) for m in methods})
        model, _ = cached_training(f"original-{cache_tag(args.regime)}-s{args.seed}", lambda: recipe.build_model(bundle),
                                   bundle.train, recipe.train, args.seed, f"original seed {args.seed}")
        name, setting = f"sequential_{args.regime}_{scenario}", f"{args.regime} regime, tuned configs"
    else:
        bundle = load_digits_bundle(seed=args.seed)
        recipe = recipe_for(bundle)
        configs = recipe.method_configs
        torch.manual_seed(args.seed)
        model = train_model(recipe.build_model(bundle), bundle.train, recipe.train, torch.device("cpu"), seed=args.seed,
                            progress=False)
        name, setting = f"sequential_{scenario}", "digits, default configs"
    configs = apply_overrides(configs, args.set, used=tuple(methods))
    name += f"_{args.name}" if args.name else ""
    requests = sequential_requests(bundle, args.requests, seed=args.seed)
    rows = compare_sequential(model, bundle, requests, methods, configs, seed=args.seed, runtime=Runtime(progress=False))
    title = f"{setting}: {len(requests)} requests ({args.requests}), seed {args.seed}"
    print(write_sequential_report(rows, args.out, name, title, provenance=provenance(measured_with), extra=dict(
        command=command_line(__spec__.name, argv), environment=measured_with, requests=args.requests, methods=methods,
        overrides=args.set)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
