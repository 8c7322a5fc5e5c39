"""Where WSS-CL's cost goes, stage by stage (issue 33's profile).

On one cell (a regime and a forget spec), WSS-CL with the cell's tuned config unlearns original
``--seed`` (default 0; the cached ones the instrument and the quality bench share; the run uses
the same seed), and every stage is measured twice: in work (sample-passes through the model,
``wsscl_fast.work``; deterministic, the unit of the cost cap) and in seconds (one thread; only
comparable within a run on an idle machine).

- saliency: one pass with gradients over the forget set
- targets: the pseudo-labels (``num_views`` augmented views of each forget sample) and the KL bounds
- forget: stage 1, bounded KL on forget batches beside retain batches
- contrastive: stage 2, retain batches with forget anchors and their views

Each stage's work is also given as a fraction of Retrain's (its epochs over the retain set),
beside the work of every other method in the cell's instrument results, when they exist.

    python -m benchmarks.quality.wsscl_profile --regime memorise --forget random:0.1
    python -m benchmarks.quality.wsscl_profile --regime memorise --forget random:0.1 --set finetune_epochs=3 --name cut
    python -m benchmarks.quality.wsscl_profile --regime generalise --seed 2 --set checkpoint_choice=holdout --name s2
"""
from __future__ import annotations

import argparse
import json

import torch

from benchmarks.harness import DEFAULT_CIFAR10, REPO, environment, provenance, write_json
from benchmarks.quality.cells import cell_name, tuned_configs
from benchmarks.quality.ensembles import load_cell, original

from wsscl_fast.api import unlearn
from wsscl_fast.execution import Runtime
from wsscl_fast.recipes import apply_overrides
from wsscl_fast.work import retrain_work

RESULTS = REPO / "benchmarks" / "results"


def instrument_work(regime: str, forget: str) -> dict:
    """{method: work as a fraction of Retrain's} from the cell's instrument results (empty without them)."""
    path = RESULTS / f"instrument_{cell_name(regime, forget)}.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["rows"]
    return {m: row["work_fraction_of_retrain"] for m, row in rows.items() if "work_fraction_of_retrain" in row}


def profile(regime: str, forget: str, overrides: list[str], data_root, seed: int = 0) -> dict:
    cell = load_cell(regime, forget, data_root)
    configs, source = tuned_configs(regime, forget)
    config = apply_overrides(configs, overrides, "wsscl", used=("wsscl",))["wsscl"]
    model, _ = original(cell, seed)
    torch.set_num_threads(1)
    result = unlearn(model, cell.scenario.forget, cell.scenario.retain, "wsscl", config, holdout=cell.scenario.holdout,
                     seed=seed, runtime=Runtime(progress=False))
    full = retrain_work(cell.configs["retrain"].epochs, len(cell.scenario.retain))
    work = result.info["work"]
    stages = {name: dict(seconds=result.timings[name], work=passes, work_fraction_of_retrain=passes / full)
              for name, passes in work["by_stage"].items()}
    return dict(regime=regime, forget=forget, seed=seed, config_from=source, overrides=overrides,
                config=config.to_dict(), forget_size=len(cell.scenario.forget), retain_size=len(cell.scenario.retain),
                retrain_work=full, rte=result.rte, work=work["sample_passes"],
                work_fraction_of_retrain=work["sample_passes"] / full, stages=stages,
                other_methods_work=instrument_work(regime, forget))


def table(result: dict) -> str:
    lines = ["| stage | work (sample-passes) | of Retrain's | share of WSS-CL's | seconds |", "|---|---|---|---|---|"]
    for name, stage in result["stages"].items():
        lines.append(f"| {name} | {stage['work']:,} | {stage['work_fraction_of_retrain']:.3f} | "
                     f"{stage['work'] / result['work']:.0%} | {stage['seconds']:.1f} |")
    lines.append(f"| total | {result['work']:,} | {result['work_fraction_of_retrain']:.3f} | 100% | {result['rte']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=("memorise", "generalise"), required=True)
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change the tuned config")
    parser.add_argument("--seed", type=int, default=0, help="which cached original, and the run's seed")
    parser.add_argument("--name", default="before", help="suffix of the result file")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10))
    args = parser.parse_args()
    result = profile(args.regime, args.forget, args.set, args.data_root, args.seed)
    measured_with = environment()
    result.update(environment=measured_with, provenance=provenance(measured_with))
    path = RESULTS / f"wsscl_profile_{cell_name(args.regime, args.forget)}_{args.name}.json"
    write_json(result, path)
    print(table(result))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
