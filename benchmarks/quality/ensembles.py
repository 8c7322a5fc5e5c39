"""Cached model ensembles for the per-example instrument (``benchmarks/quality/instrument.py``).

For one cell (a regime of ``bench_quality_cpu`` and a forget spec), with ``n`` models:
- ``n`` originals, trained on the whole training split with seeds 0..n-1 (cached under the same
  keys as the quality bench, so both share them);
- ``n`` oracles, Retrain on the retain split with seeds 0..n-1. The forget set is the same for
  every model of the cell (scenario seed 0): only the training seed varies;
- per method, ``n`` unlearned models, model i unlearned from original i with seed i.

Every model's logits on the cell's evaluation points (all forget samples, a fixed sample of
retain samples, the validation split) are cached beside it, so scoring never runs a model twice.

    python -m benchmarks.quality.ensembles --regime generalise --forget random:0.1 --models 8
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch.utils.data import Subset

from benchmarks.quality.cells import CACHE, REGIMES, cache_tag, cached_training, load_regime
from benchmarks.harness import DEFAULT_CIFAR10

from wsscl_fast.checkpoint import atomic_save
from wsscl_fast.data import make_scenario
from wsscl_fast.metrics import logits_on

SCENARIO_SEED = 0  #: the one forget set of a cell
RETAIN_EVAL_SIZE = 1000  #: retain samples scored per model (a fixed seeded sample)


@dataclass
class Cell:
    """One regime x forget spec: its data, recipe, method configs and evaluation points."""
    regime: str
    forget: str
    bundle: object
    recipe: object
    configs: dict
    scenario: object
    points: dict  #: split name -> Dataset of the samples scored (forget, retain, validation)

    @property
    def key(self) -> str:
        return f"{cache_tag(self.regime)}-{self.forget.replace(':', '')}-f{SCENARIO_SEED}"


def load_cell(regime: str, forget: str, data_root=DEFAULT_CIFAR10) -> Cell:
    args = argparse.Namespace(regime=regime, data_root=str(data_root))
    bundle, recipe, configs = load_regime(args)
    scenario = make_scenario(bundle, forget, seed=SCENARIO_SEED)
    order = torch.randperm(len(scenario.retain), generator=torch.Generator().manual_seed(SCENARIO_SEED))
    retain_points = Subset(scenario.retain, order[:RETAIN_EVAL_SIZE].sort().values.tolist())
    points = {"forget": scenario.forget, "retain": retain_points, "validation": scenario.holdout}
    return Cell(regime, forget, bundle, recipe, configs, scenario, points)


def cell_logits(cell: Cell, model) -> dict:
    return {split: logits_on(model, data) for split, data in cell.points.items()}


def original(cell: Cell, seed: int):
    """(model, training seconds) of original ``seed`` (cached)."""
    return cached_training(f"original-{cache_tag(cell.regime)}-s{seed}", lambda: cell.recipe.build_model(cell.bundle),
                           cell.bundle.train, cell.recipe.train, seed, f"original seed {seed}")


def oracle(cell: Cell, seed: int):
    """(model, training seconds) of oracle ``seed``: Retrain on the cell's retain split (cached)."""
    return cached_training(f"oracle-{cell.key}-s{seed}", lambda: cell.recipe.build_model(cell.bundle),
                           cell.scenario.retain, cell.configs["retrain"], seed, f"oracle seed {seed}")


def cached_logits(cell: Cell, name: str, make_model) -> dict:
    """Logits of the cached model ``name`` on the cell's points (computed once)."""
    path = CACHE / "logits" / f"{cell.key}-{name}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    logits = cell_logits(cell, make_model())
    atomic_save(logits, path)
    return logits


def train_ensembles(cell: Cell, n: int) -> None:
    """Train (or find cached) the cell's n originals and n oracles and cache their logits."""
    for seed in range(n):
        start = time.perf_counter()
        cached_logits(cell, f"original-s{seed}", lambda: original(cell, seed)[0])
        cached_logits(cell, f"oracle-s{seed}", lambda: oracle(cell, seed)[0])
        print(f"{cell.key}: original and oracle {seed} ready ({time.perf_counter() - start:.0f} s)", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", choices=sorted(REGIMES), required=True)
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--models", type=int, default=8, help="originals and oracles per cell")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10))
    args = parser.parse_args(argv)
    train_ensembles(load_cell(args.regime, args.forget, args.data_root), args.models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
