"""The README's results headline and table, generated from the tuned quality-bench files.

Reads every ``benchmarks/results/quality_<regime>_<scenario>.json`` whose methods were tuned
(benchmarks/quality/tuning.py) and writes ``benchmarks/results/quality_summary.md``: one sentence per
cell saying plainly whether WSS-CL has the lowest mean Avg. Gap of all tuned methods (and at
what cost), then a per-seed table. ``python -m benchmarks.publish.update_readme`` copies it into the README.

    python -m benchmarks.publish.summarize_quality
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from benchmarks.harness import REPO, environment, provenance

from wsscl_fast.checkpoint import atomic_write_bytes
from wsscl_fast.report import provenance_line

RESULTS = REPO / "benchmarks" / "results"
CELLS = [(regime, scenario) for regime in ("memorise", "generalise") for scenario in ("random", "classwise")]
REGIME_NAMES = {"memorise": "memorising (CIFAR-10 subset, no augmentation)",
                "generalise": "generalising (Fashion-MNIST, augmentation)"}


def _per_seed(rows: list[dict], method: str) -> list[float]:
    return [r["gap"] for r in sorted(rows, key=lambda r: r["seed"]) if r["method"] == method]


def _mean_rte(rows: list[dict], method: str) -> float:
    return statistics.mean(r["RTE"] for r in rows if r["method"] == method)


def cell_summary(result: dict) -> dict:
    """WSS-CL, the best tuned baseline and the contrastive ablation of one results file."""
    rows, verdict = result["rows"], result["verdict"]
    best = verdict["best_baseline"]
    tuned = {r["method"] for r in rows if r["method"] not in ("original", "retrain") and "[" not in r["method"]}
    ranking = sorted(tuned, key=lambda m: statistics.mean(_per_seed(rows, m)))  # variants ("m [field=v]") excluded
    return dict(wsscl=_per_seed(rows, "wsscl"), best=best, original=_per_seed(rows, "original"), best_gaps=_per_seed(rows, best),
                ablation=_per_seed(rows, "wsscl [contrastive_weight=0]"), wsscl_rte=_mean_rte(rows, "wsscl"),
                best_rte=_mean_rte(rows, best), rank=ranking.index("wsscl") + 1, methods=len(ranking),
                commit=result["environment"]["git_commit"], date=result["environment"]["date"][:10],
                trials=result["tuning"]["trials_per_method"], verdict=verdict)


def _gaps(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})"


def sentence(regime: str, scenario: str, cell: dict) -> str:
    where = f"{REGIME_NAMES[regime]}, {scenario}"
    if cell["verdict"]["met"]:
        claim = (f"WSS-CL has the lowest mean Avg. Gap of the {cell['methods']} tuned methods, at "
                 f"{cell['wsscl_rte']:.1f} s against {cell['best']}'s {cell['best_rte']:.1f} s")
    elif cell["verdict"]["gap_lowest"]:
        claim = (f"WSS-CL has the lowest mean Avg. Gap, but costs more than the best baseline, {cell['best']} "
                 f"({cell['wsscl_rte']:.1f} s against {cell['best_rte']:.1f} s)")
    else:
        claim = (f"WSS-CL does not win: it ranks {cell['rank']} of {cell['methods']} tuned methods, with a mean gap of "
                 f"{statistics.mean(cell['wsscl']):.2f} against {cell['best']}'s "
                 f"{statistics.mean(cell['best_gaps']):.2f}")
    if cell["ablation"]:
        helps = statistics.mean(cell["wsscl"]) < statistics.mean(cell["ablation"])
        claim += f"; its contrastive term {'lowers' if helps else 'does not lower'} the gap"
    original = statistics.mean(cell["original"])
    if original < statistics.mean(cell["best_gaps"]):
        claim += (f"; the untouched original ({original:.2f}) is closer to Retrain than every tuned method, so this "
                  "cell measures noise more than forgetting")
    return f"- **{where}**: {claim}."


def render(cells: dict, stamp: dict) -> str:
    lines = ["# Quality bench, every method tuned with the same budget", ""]
    lines += [sentence(regime, scenario, cell) for (regime, scenario), cell in cells.items()]
    if cells:
        wins = sum(cell["verdict"]["gap_lowest"] for cell in cells.values())
        both = sum(cell["verdict"]["met"] for cell in cells.values())
        helps = sum(bool(c["ablation"]) and statistics.mean(c["wsscl"]) < statistics.mean(c["ablation"])
                    for c in cells.values())
        lines.append(f"- **Over the {len(cells)} cells**: WSS-CL has the lowest mean gap in {wins}, at no more than "
                     f"the best baseline's cost in {both}; its contrastive term lowers its gap in {helps}.")
    missing = [f"{regime} {scenario}" for regime, scenario in CELLS if (regime, scenario) not in cells]
    if missing:
        lines.append(f"- Not yet run with tuned baselines: {', '.join(missing)}.")
    lines += ["", "| regime | scenario | WSS-CL gap (per seed) | best tuned baseline | its gap (per seed) | "
                  "WSS-CL without the contrastive term | WSS-CL RTE | baseline RTE | trials per method | commit |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for (regime, scenario), cell in cells.items():
        lines.append(f"| {regime} | {scenario} | {_gaps(cell['wsscl'])} | {cell['best']} | {_gaps(cell['best_gaps'])} | "
                     f"{_gaps(cell['ablation']) if cell['ablation'] else 'not run'} | {cell['wsscl_rte']:.1f} s | "
                     f"{cell['best_rte']:.1f} s | {cell['trials']} | {cell['commit'][:7]} ({cell['date']}) |")
    return "\n".join(lines) + "\n\n" + provenance_line(stamp) + "\n"


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    cells = {}
    for regime, scenario in CELLS:
        path = RESULTS / f"quality_{regime}_{scenario}.json"
        if path.is_file():
            result = json.loads(path.read_text())
            if result.get("tuning") and result.get("verdict"):
                cells[(regime, scenario)] = cell_summary(result)
    out = RESULTS / "quality_summary.md"
    stamp = {**provenance(environment()), "device": "none (derived from the quality_*.json files above)"}
    atomic_write_bytes(render(cells, stamp).encode(), out)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
