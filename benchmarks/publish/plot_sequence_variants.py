"""One method's variants over a sequence of requests, against Retrain, from bench_sequential runs
of the same requests and seed (each a --name variant): test accuracy and the prediction KL
from each request's Retrain, per request. Nothing is re-measured; the PNG's provenance lists
every input's commit and command.

    python -m benchmarks.publish.plot_sequence_variants --method wsscl \
        --run last=benchmarks/results/sequential_generalise_random.json \
        --run holdout=benchmarks/results/sequential_generalise_random_holdout_skip.json \
        --out benchmarks/results/sequential_generalise_random_wsscl_choice.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.harness import command_line, environment

from wsscl_fast.report import save_figure


def load_runs(specs: list[str], method: str) -> tuple[dict, list[dict], list[dict]]:
    """({label: the method's rows}, Retrain's rows (the first run's; every run must agree), provenances)."""
    runs, retrain, sources = {}, None, []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--run expects LABEL=PATH, got {spec!r}")
        result = json.loads(Path(path).read_text())
        rows = sorted(result["rows"], key=lambda r: r["request"])
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            raise SystemExit(f"{path} has no {method} rows")
        its_retrain = [r["TA"] for r in rows if r["method"] == "retrain"]
        if retrain is not None and its_retrain != [r["TA"] for r in retrain]:
            raise SystemExit(f"{path}: its Retrain differs from the first run's: not the same requests and seed")
        retrain = retrain or [r for r in rows if r["method"] == "retrain"]
        runs[label] = mine
        sources.append(dict(file=Path(path).name, commit=result["environment"]["git_commit"], command=result["command"]))
    return runs, retrain, sources


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs, retrain, sources = load_runs(args.run, args.method)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (accuracy, distance) = plt.subplots(1, 2, figsize=(8.5, 3.2), dpi=90)
    k = [r["request"] for r in retrain]
    accuracy.plot(k, [r["TA"] for r in retrain], marker="o", color="black", label="retrain")
    accuracy.fill_between(k, [r["TA"] - 1 for r in retrain], [r["TA"] + 1 for r in retrain], color="black",
                          alpha=0.1, label="retrain ± 1 point")
    for i, (label, rows) in enumerate(runs.items()):
        style = dict(marker="o", color=f"C{i}", label=f"{args.method} ({label})")
        accuracy.plot([r["request"] for r in rows], [r["TA"] for r in rows], **style)
        distance.plot([r["request"] for r in rows], [r["test_KL"] for r in rows], **style)
        distance.plot([r["request"] for r in rows], [r["forget_KL"] for r in rows], marker="x", linestyle="--",
                      color=f"C{i}")
    accuracy.set_ylabel("test accuracy (%)")
    distance.set_ylabel("KL from that request's Retrain (nats)\nsolid: test, dashed: forgotten so far")
    for axis in (accuracy, distance):
        axis.set_xticks(k)
        axis.set_xlabel("requests so far")
        axis.legend(fontsize=7)
    fig.suptitle(f"{args.method}: checkpoint choice over {len(k)} requests (one seed, one Retrain per request)",
                 fontsize=9)
    fig.tight_layout()
    stamp = environment()
    save_figure(fig, args.out, dict(commit=stamp["git_commit"], date=stamp["date"], device=stamp["device"],
                                    command=command_line(__spec__.name, argv), inputs=sources))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
