"""The comparisons the command line runs: every method against Retrain on one forget spec
(``compare``), and the demo's seeds x scenarios on the embedded digits data (``demo``)."""
from __future__ import annotations

import torch

from .api import compare
from .data import load_bundle, make_scenario, request_scenario
from .execution import Execution, Runtime
from .methods import UNLEARNING_METHODS
from .metrics import predict_split
from .progress import Overall
from .recipes import recipe_for
from .training import train_model

#: (forget spec, report name, heading) of the demo's two scenarios
DEMO_SCENARIOS = (("class:3", "classwise", "forgetting every '3' (class-wise)"),
                  ("random:0.1", "random", "forgetting 10% at random"))


def run_comparison(model, bundle, recipe, forget_spec: str, methods, seed: int, runtime: Runtime,
                   audit: bool = False, already_forgotten=None) -> tuple[list[dict], str]:
    """(rows of :func:`~wsscl_fast.api.compare`, report title) for one forget spec and seed.
    ``already_forgotten``: training rows the model forgot earlier (its ledger); they are in no
    forget or retain set, Retrain's included, and a random spec draws among the others."""
    scenario = (make_scenario(bundle, forget_spec, seed=seed) if already_forgotten is None else
                request_scenario(bundle, forget_spec, seed, already_forgotten))
    rows = compare(model, scenario, methods, recipe.method_configs, audit=audit, seed=seed, runtime=runtime)
    return rows, (f"{bundle.name}, {recipe.arch}: forgetting {scenario.name} "
                  f"({len(scenario.forget)} of {len(bundle.train)} samples)")


def run_demo(seeds: range, device, execution: Execution, runtime: Runtime, progress: bool) -> tuple[dict, dict]:
    """Per seed: train the original on digits, then compare every method (untuned) in both
    scenarios. Returns ({report name: rows over the seeds}, {report name: title})."""
    bundle = load_bundle("digits", seed=seeds[0])
    recipe = recipe_for(bundle)
    rows, titles = {name: [] for _, name, _ in DEMO_SCENARIOS}, {}
    overall = Overall(len(seeds) * len(DEMO_SCENARIOS), "demo", progress)
    for seed in seeds:
        torch.manual_seed(seed)
        model = train_model(recipe.build_model(bundle), bundle.train, recipe.train, torch.device(device), seed=seed,
                            progress=progress, desc="original", execution=execution)
        print(f"seed {seed}: original small CNN on digits, test accuracy {predict_split(model, bundle.test).accuracy:.1f}%")
        for spec, name, _ in DEMO_SCENARIOS:
            seed_rows, titles[name] = run_comparison(model, bundle, recipe, spec, UNLEARNING_METHODS, seed, runtime)
            rows[name] += seed_rows
            overall.advance(f"seed {seed}, {name}")
    overall.close()
    return rows, titles
