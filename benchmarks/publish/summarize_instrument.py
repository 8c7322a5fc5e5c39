"""The README's headline, generated from the instrument's results (``benchmarks/quality/instrument.py``).

Reads every ``benchmarks/results/instrument_<regime>_<scenario>.json``; writes beside each a
Markdown table of every method, the original and the oracle floor with 95% intervals, the
challenge score and the cost, and writes ``benchmarks/results/instrument_summary.md``: per
cell, one sentence on WSS-CL against every method by the paired interval of their KLoM
difference ("lower" only when the interval excludes 0, else "tied"), and one compact table. A cell whose original is under 5x the
floor says that the instrument cannot separate it. ``python -m benchmarks.publish.update_readme``
copies the file into the README.

    python -m benchmarks.publish.summarize_instrument
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from benchmarks.harness import REPO, environment, provenance

from wsscl_fast.checkpoint import atomic_write_bytes
from wsscl_fast.report import provenance_line

RESULTS = REPO / "benchmarks" / "results"
#: a forget-set KLoM this close to ln(1 / smoothing) means disjoint margins: the histogram KL saturates
SATURATED = 0.9 * math.log(1 / 1e-5)
CELLS = [(regime, scenario) for regime in ("memorise", "generalise") for scenario in ("random", "classwise")]


def _ci(pair) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def cell_sentence(regime: str, scenario: str, result: dict) -> str:
    """One sentence: where WSS-CL stands, by paired verdicts, and whether the cell separates at all."""
    rows, against = result["rows"], result["wsscl_against"]
    head = f"**{regime} / {scenario}** ({result['models']} models a side)"
    lower = sorted(m for m, c in against.items() if c["verdict"] == "lower" and m != "original")
    tied = sorted(m for m, c in against.items() if c["verdict"] == "tied" and m != "original")
    higher = sorted(m for m, c in against.items() if c["verdict"] == "higher" and m != "original")
    methods = [m for m in rows if m != "original"]
    best = min(methods, key=lambda m: rows[m]["klom"])
    parts = []
    if not result["separable"]:
        parts.append(f"on the forget set the untouched original ({rows['original']['splits']['forget']['mean']:.3f}) "
                     f"is under {result['floor_factor']:.0f}x the oracle floor "
                     f"({result['floor']['splits']['forget']['mean']:.3f}), so this instrument cannot separate forgetting "
                     f"here: read the rows as distances from the oracles, not as degrees of forgetting")
    relation = {"lower": "below", "higher": "above", "tied": "tied with"}[against["original"]["verdict"]]
    saturated = [m for m in rows if rows[m]["splits"]["forget"]["mean"] >= SATURATED]
    if len(saturated) > len(rows) // 2:
        parts.append(f"on the forget set KLoM saturates for {len(saturated)} of {len(rows)} rows, the original "
                     f"included (their margins and the oracles' do not overlap), so it cannot rank forgetting here: "
                     f"the differences below come from the retain and validation splits, and a damaged model whose "
                     f"forget margins leave saturation can rank lowest (read each row's RA beside the oracles')")
    parts += [f"WSS-CL's KLoM is {rows['wsscl']['klom']:.3f} {_ci(rows['wsscl']['klom_ci'])}, {relation} "
              f"the untouched original's",
              f"the lowest point estimate is {best}'s ({rows[best]['klom']:.3f}, at RA {rows[best]['RA']:.1f} "
              f"against the oracles' {result['oracle_accuracy']['RA']:.1f})",
              f"by paired intervals WSS-CL is below {', '.join(lower) or 'no method'}, "
              f"tied with {', '.join(tied) or 'no method'} and above {', '.join(higher) or 'no method'}"]
    return f"- {head}: " + "; ".join(parts) + "."


def cell_table(result: dict) -> list[str]:
    lines = ["| model | KLoM (95% CI) | forget mean / p95 | retain mean | validation mean | challenge score (95% CI) "
             "| UA | RA | VA | work / Retrain's | RTE |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    floor = result["floor"]
    entries = [("oracle floor (half vs half)", floor), *result["rows"].items()]
    oracle = result["oracle_accuracy"]
    for name, row in entries:
        split = row["splits"]
        cost = (f"{row['work_fraction_of_retrain']:.2f} | {row['rte_s']:.1f} s" if "rte_s" in row else "- | -")
        rest = (f"{row['challenge']['score']:.3f} {_ci(row['challenge_ci'])} | {row['UA']:.1f} | {row['RA']:.1f} "
                f"| {row['VA']:.1f}" if "challenge" in row else "- | - | - | -")
        lines.append(f"| {name} | {row['klom']:.3f} {_ci(row['klom_ci'])} | {split['forget']['mean']:.3f} / "
                     f"{split['forget']['p95']:.3f} | {split['retain']['mean']:.3f} | {split['validation']['mean']:.3f} "
                     f"| {rest} | {cost} |")
    lines.append(f"| oracles (their own accuracies) | - | - | - | - | - | {oracle['UA']:.1f} | {oracle['RA']:.1f} "
                 f"| {oracle['VA']:.1f} | 1.00 | - |")
    return lines


def compact_row(regime: str, scenario: str, result: dict) -> str:
    rows, floor = result["rows"], result["floor"]
    methods = [m for m in rows if m != "original"]
    best = min(methods, key=lambda m: rows[m]["klom"])
    wsscl = rows.get("wsscl")
    return (f"| {regime} | {scenario} | {result['models']} | {floor['klom']:.3f} {_ci(floor['klom_ci'])} "
            f"| {rows['original']['klom']:.3f} | {rows['original']['splits']['forget']['mean']:.2f} / "
            f"{floor['splits']['forget']['mean']:.2f} ({'>=' if result['separable'] else '<'} 5x) "
            f"| {wsscl['klom']:.3f} {_ci(wsscl['klom_ci'])} | {best} {rows[best]['klom']:.3f} "
            f"| {wsscl['work_fraction_of_retrain']:.2f} | {rows[best]['work_fraction_of_retrain']:.2f} |"
            if wsscl else f"| {regime} | {scenario} | {result['models']} | - | - | - | - | - | - | - |")


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    found = [(r, s, RESULTS / f"instrument_{r}_{s}.json") for r, s in CELLS]
    found = [(r, s, json.loads(p.read_text())) for r, s, p in found if p.is_file()]
    if not found:
        print("no instrument_*.json results yet", file=sys.stderr)
        return 1
    footer = provenance_line(provenance(environment(), "python -m benchmarks.publish.summarize_instrument"))
    for regime, scenario, result in found:  # one full table per cell
        lines = [f"# {result['title']}", "",
                 f"KLoM cross-fitted at {result['models'] // 2} models a side, {result['bins']} bins; intervals over "
                 f"{result['resamples']} random half-splits (challenge score: bootstrap over models); configs from "
                 f"`{result['configs_from']}`; work as a fraction of Retrain's ({result['retrain_work']} sample-passes).",
                 "", *cell_table(result), "", footer]
        atomic_write_bytes(("\n".join(lines) + "\n").encode(), RESULTS / f"instrument_{regime}_{scenario}.md")
    lines = ["# Per-example instrument: KLoM to retrained oracles", ""]
    lines += [cell_sentence(r, s, result) for r, s, result in found]
    missing = [f"{r} / {s}" for r, s in CELLS if (r, s) not in {(a, b) for a, b, _ in found}]
    if missing:
        lines.append(f"- Not measured yet: {', '.join(missing)}.")
    lines += ["", "| regime | scenario | models | oracle floor (95% CI) | original | forget set: original / floor "
              "| WSS-CL (95% CI) | lowest | WSS-CL work / Retrain's | lowest's work |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [compact_row(r, s, result) for r, s, result in found]
    lines += ["", footer]
    atomic_write_bytes(("\n".join(lines) + "\n").encode(), RESULTS / "instrument_summary.md")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
