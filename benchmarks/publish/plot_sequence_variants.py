"""One method's runs over a sequence of requests, each against its own Retrain, from
bench_sequential runs (variants on one seed, or one variant on several seeds; each a --name
run): the test accuracy minus that request's Retrain's, and the prediction KL from that
Retrain, per request. Nothing is re-measured; the PNG's provenance lists every input's commit
and command.

    python -m benchmarks.publish.plot_sequence_variants --method wsscl \
        --run last=benchmarks/results/sequential_generalise_random.json \
        --run holdout=benchmarks/results/sequential_generalise_random_holdout_skip.json \
        --out benchmarks/results/sequential_generalise_random_wsscl_choice.png
    python -m benchmarks.publish.plot_sequence_variants --method wsscl \
        --run "seed 2=benchmarks/results/sequential_generalise_random_seed2_holdout_v4.json" ... \
        --out benchmarks/results/sequential_generalise_random_wsscl_holdout_seeds.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.harness import command_line, environment

from wsscl_fast.report import save_figure


def paired_rows(path: Path | str, method: str) -> tuple[list[dict], list[dict], dict]:
    """(the method's rows, the same requests' Retrain rows, the whole result) of one
    bench_sequential run, rows by request; refuses a run whose two lists do not pair up."""
    result = json.loads(Path(path).read_text())
    rows = sorted(result["rows"], key=lambda r: r["request"])
    mine, retrain = ([r for r in rows if r["method"] == m] for m in (method, "retrain"))
    if not mine:
        raise SystemExit(f"{path} has no {method} rows")
    if [r["request"] for r in mine] != [r["request"] for r in retrain]:
        raise SystemExit(f"{path}: its {method} and Retrain rows are not the same requests")
    return mine, retrain, result


def load_runs(specs: list[str], method: str) -> tuple[dict, list[dict]]:
    """({label: (the method's rows, that run's Retrain rows)}, provenances), rows by request."""
    runs, sources = {}, []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--run expects LABEL=PATH, got {spec!r}")
        mine, retrain, result = paired_rows(path, method)
        runs[label] = (mine, retrain)
        sources.append(dict(file=Path(path).name, commit=result["environment"]["git_commit"], command=result["command"]))
    return runs, sources


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs, sources = load_runs(args.run, args.method)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (accuracy, distance) = plt.subplots(1, 2, figsize=(10.5, 3.4), dpi=90)
    k = sorted({r["request"] for mine, _ in runs.values() for r in mine})
    accuracy.axhline(0, color="black", linewidth=1)
    accuracy.axhspan(-1, 1, color="black", alpha=0.1, label="within 1 point of Retrain")
    for i, (label, (mine, retrain)) in enumerate(runs.items()):
        style = dict(marker="o", color=f"C{i}", label=f"{args.method} ({label})")
        requests = [r["request"] for r in mine]
        accuracy.plot(requests, [r["TA"] - ref["TA"] for r, ref in zip(mine, retrain)], **style)
        distance.plot(requests, [r["test_KL"] for r in mine], **style)
        distance.plot(requests, [r["forget_KL"] for r in mine], marker="x", linestyle="--", color=f"C{i}")
    accuracy.set_ylabel("test accuracy minus Retrain's (points)")
    distance.set_ylabel("KL from that request's Retrain (nats)\nsolid: test, dashed: forgotten so far")
    for axis in (accuracy, distance):
        axis.set_xticks(k)
        axis.set_xlabel("requests so far")
    fig.legend(*accuracy.get_legend_handles_labels(), loc="center right", fontsize=7)
    fig.suptitle(f"{args.method} over {len(k)} requests, each against that request's Retrain", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.8, 1))  # the right fifth holds the legend, clear of the lines
    stamp = environment()
    save_figure(fig, args.out, dict(commit=stamp["git_commit"], date=stamp["date"], device=stamp["device"],
                                    command=command_line(__spec__.name, argv), inputs=sources))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
