"""Issue 33's sequence bar, read from bench_sequential runs: after every request, is WSS-CL's
test accuracy within 1 point of that request's Retrain, and does its test KL from that Retrain
grow from request to request? Nothing is re-measured.

Per run and request: TA minus Retrain's TA, test KL, and what the checkpoint choice did
(``s``: skipped training and returned the given model; ``g``: trained and kept the given model;
``eK``: an epoch's model; ``-``: no choice recorded, the last model). Then per run: the bar met
or not, and the test KL after the last request against after the first.

    python docs/experiments/2026-12-04-harm/sequence_bar.py \
        benchmarks/results/sequential_generalise_random_seed1{0,1,2,3}_holdout_v5.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks.publish.plot_sequence_variants import paired_rows  # noqa: E402

BAR_POINTS = 1.0  #: issue 33: within 1 test point of that request's Retrain


def choice_mark(row: dict) -> str:
    """One letter (and epoch) for what the checkpoint choice did at this request."""
    choice = row.get("checkpoint_choice")
    if not isinstance(choice, dict):
        return "-"
    if choice.get("skipped_training"):
        return "s"
    chosen = choice["chosen"]
    return "g" if chosen == "given model" else "e" + chosen.rsplit(" ", 1)[-1]


def read_run(path: Path, method: str = "wsscl") -> dict:
    """The run's per-request rows against its own Retrain, and whether it meets the bar."""
    mine, retrain, _ = paired_rows(path, method)
    per_request = [dict(request=row["request"], TA=row["TA"], TA_minus_retrain=row["TA"] - ref["TA"],
                        test_KL=row["test_KL"], choice=choice_mark(row)) for row, ref in zip(mine, retrain)]
    return dict(run=path.stem.rpartition("_seed")[2] or path.stem, requests=per_request,
                bar_met=all(abs(r["TA_minus_retrain"]) <= BAR_POINTS for r in per_request),
                outside=sum(abs(r["TA_minus_retrain"]) > BAR_POINTS for r in per_request),
                test_KL_first_last=(per_request[0]["test_KL"], per_request[-1]["test_KL"]))


def markdown(runs: list[dict]) -> str:
    """One table row per run: per request ``choice TA (minus Retrain's) / test KL``, then the bar
    and the test KL after the last request against after the first."""
    width = max(len(r["requests"]) for r in runs)
    lines = ["| run | " + " | ".join(f"after {k}" for k in range(1, width + 1)) + " | bar | test KL first -> last |",
             "|---|" + "---|" * width + "---|---|"]
    for run in runs:
        cells = [f"{r['choice']} {r['TA']:.1f} ({r['TA_minus_retrain']:+.1f}) / {r['test_KL']:.3f}"
                 for r in run["requests"]]
        first, last = run["test_KL_first_last"]
        lines.append(f"| {run['run']} | " + " | ".join(cells)
                     + f" | {'met' if run['bar_met'] else 'missed'} | {first:.3f} -> {last:.3f} |")
    met = sum(r["bar_met"] for r in runs)
    outside = sum(r["outside"] for r in runs)
    total = sum(len(r["requests"]) for r in runs)
    lines.append(f"\nBar met on {met} of {len(runs)} runs; {outside} of {total} requests outside "
                 f"{BAR_POINTS:g} point of their Retrain.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="bench_sequential result JSON files")
    parser.add_argument("--method", default="wsscl")
    args = parser.parse_args(argv)
    print(markdown([read_run(path, args.method) for path in args.runs]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
