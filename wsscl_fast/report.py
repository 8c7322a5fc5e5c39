"""Comparison reports: Markdown tables, a JSON file, a PNG of the gaps to Retrain and, with
the audit's membership test, a PNG of the per-sample scores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_bytes

COLUMNS = ("UA", "RA", "TA", "MIA", "gap", "RTE")
AUDIT_COLUMNS = ("relearn_retain_FA", "relearn_k_FA", "probe_FA", "lira_tpr@0.01", "lira_tpr@0.001")
HEADERS = {"UA": "UA", "RA": "RA", "TA": "TA", "MIA": "MIA-eff.", "gap": "Avg. Gap", "RTE": "RTE (s)",
           "forgotten_class_TA": "forgotten-class TA", "relearn_retain_FA": "FA after retain relearning",
           "relearn_k_FA": "FA after k-shot relearning", "probe_FA": "linear-probe FA",
           "lira_tpr@0.01": "LiRA TPR @ 1% FPR", "lira_tpr@0.001": "LiRA TPR @ 0.1% FPR"}


def save_figure(fig, path: Path, provenance: dict | None = None) -> None:
    """Write a matplotlib figure as PNG atomically (a temporary file, then a rename) and close it.
    ``provenance`` (commit, date, device, command) goes into the PNG's "Provenance" text chunk as JSON."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, format="png", metadata={"Provenance": json.dumps(provenance)} if provenance else None)
    plt.close(fig)
    tmp.replace(path)


def provenance_line(provenance: dict) -> str:
    """The Markdown line that says where a result came from: ``Provenance: commit `...`, date `...`, ...``."""
    return "Provenance: " + ", ".join(f"{key} `{value}`" for key, value in provenance.items())


def _write_markdown(path: Path, title: str, table: str, provenance: dict | None) -> None:
    """``# title``, the table, then the provenance line when given, written atomically."""
    footer = f"\n{provenance_line(provenance)}\n" if provenance else ""
    atomic_write_bytes(f"# {title}\n\n{table}\n{footer}".encode(), path)


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(json.dumps(payload, indent=2, default=str).encode(), path)


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds of every metric, one entry per method (first-seen order)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    keys = [k for k in (*COLUMNS, "forgotten_class_TA", *AUDIT_COLUMNS) if k in rows[0]]
    summary = []
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        entry = {"method": m, "seeds": [r["seed"] for r in mine]}
        for k in keys:
            values = np.array([r[k] for r in mine], dtype=float)
            entry[k] = float(values.mean())
            entry[k + "_std"] = float(values.std()) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def markdown_table(summary: list[dict], columns=("UA", "RA", "TA", "MIA", "forgotten_class_TA", "gap", "RTE")) -> str:
    """mean ± std per method of ``columns`` (those the summary has)."""
    keys = [k for k in columns if k in summary[0]]
    lines = ["| method | " + " | ".join(HEADERS[k] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for entry in summary:
        cells = []
        for k in keys:
            std = entry.get(k + "_std", 0.0)
            digits = 1 if k != "RTE" else 2
            cells.append(f"{entry[k]:.{digits}f}" + (f" ± {std:.{digits}f}" if len(entry["seeds"]) > 1 else ""))
        lines.append(f"| {entry['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gap_chart(summary: list[dict], path: Path, title: str, rows: list[dict] | None = None,
              provenance: dict | None = None) -> None:
    """Left: each method's distance to Retrain per metric, |metric - Retrain's| (0 is
    Retrain's behaviour). Right: Avg. Gap against run time, the trade-off users choose by:
    one small dot per seed (from ``rows``) and a large marker at each method's mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("UA", "RA", "TA", "MIA")
    retrain = next((e for e in summary if e["method"] == "retrain"), None)
    methods = [e for e in summary if e["method"] != "retrain"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=90, gridspec_kw=dict(width_ratios=(1.4, 1)))
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(methods))
    colors = plt.cm.tab20(np.arange(len(methods)) % 20)  # distinct for up to 20 rows (C0-C9 repeat after 10)
    for i, entry in enumerate(methods):
        gaps = [abs(entry[m] - retrain[m]) if retrain else np.nan for m in metrics]
        left.bar(x + i * width - 0.4 + width / 2, gaps, width, yerr=[entry[m + "_std"] for m in metrics],
                 label=entry["method"], color=colors[i])
        if entry["method"] != "original":
            seeds = [r for r in rows or () if r["method"] == entry["method"]]
            right.scatter([max(r["RTE"], 1e-3) for r in seeds], [r["gap"] for r in seeds], s=9, alpha=0.5,
                          color=colors[i])
            right.scatter(max(entry["RTE"], 1e-3), entry["gap"], s=60, marker="D", color=colors[i],
                          edgecolor="black", linewidth=0.5)
            right.annotate(entry["method"], (max(entry["RTE"], 1e-3), entry["gap"]), fontsize=7,
                           xytext=(3, 3), textcoords="offset points")
    left.set_xticks(x, ["UA", "RA", "TA", "MIA-eff."])
    left.set_ylabel("|metric - Retrain| (points)")
    left.legend(fontsize=7, ncol=2)
    right.set_xscale("log")
    right.set_xlabel("run time (s, log)")
    right.set_ylabel("Avg. Gap to Retrain")
    if retrain:
        right.axvline(max(retrain["RTE"], 1e-3), color="black", alpha=0.3, linestyle="--")
        right.annotate("retrain", (max(retrain["RTE"], 1e-3), 0), fontsize=7, alpha=0.6)
    right.set_ylim(bottom=0)
    right.set_title("dots: seeds, diamonds: means", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, provenance)


def membership_chart(rows: list[dict], path: Path, title: str, provenance: dict | None = None) -> None:
    """Per method, the distribution of the forget samples' LiRA scores (all seeds pooled):
    Retrain's is what never having seen them looks like."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows if "lira_scores" in r))
    scores = {m: np.concatenate([r["lira_scores"] for r in rows if r["method"] == m]) for m in methods}
    low, high = np.percentile(np.concatenate(list(scores.values())), [1, 99])
    bins = np.linspace(low, high, 40)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    for i, m in enumerate(methods):
        style = dict(color="black", linewidth=2) if m == "retrain" else dict(color=f"C{i}", linewidth=1)
        ax.hist(np.clip(scores[m], low, high), bins, histtype="step", density=True, label=m, **style)
    ax.set_xlabel("LiRA score of a forget sample (log-likelihood ratio, > 0: member)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, provenance)


def render_report(rows: list[dict], out_dir: Path, name: str, title: str, provenance: dict | None = None) -> str:
    """Write ``name``.md (the table, then ``provenance``: commit, date, device, command) and
    ``name``.png (stamped with it) from ``rows``; return the table."""
    summary = summarize(rows)
    table = markdown_table(summary)
    if any(k in summary[0] for k in AUDIT_COLUMNS):
        table += ("\n\nAudit (FA: forget-set accuracy, %; LiRA: % of forget samples called members; "
                  "closer to Retrain is better):\n\n" + markdown_table(summary, AUDIT_COLUMNS))
    _write_markdown(out_dir / f"{name}.md", title, table, provenance)
    gap_chart(summary, out_dir / f"{name}.png", title, rows, provenance)
    if any("lira_scores" in r for r in rows):
        membership_chart(rows, out_dir / f"{name}_lira.png", title, provenance)
    return table


def write_report(rows: list[dict], out_dir: str | Path, name: str, title: str, extra: dict | None = None,
                 provenance: dict | None = None) -> str:
    """Write ``name``.json (rows + summary, with ``extra``), then :func:`render_report`'s
    ``name``.md and ``name``.png; return the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"title": title, **(extra or {}), "summary": summarize(rows), "rows": rows}
    _write_json(out_dir / f"{name}.json", payload)
    return render_report(rows, out_dir, name, title, provenance)


def sequential_table(rows: list[dict]) -> str:
    """Per method and request: the Avg. Gap, TA and the test-set prediction KL from that request's
    Retrain (rows without it show -), then the mean RTE per request and the total."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    requests = sorted({r["request"] for r in rows})
    columns = [f"after {k}: gap / TA / test KL" for k in requests]
    lines = ["| method | " + " | ".join(columns) + " | RTE per request (s) | total RTE (s) |",
             "|---" * (len(requests) + 3) + "|"]
    for m in methods:
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: r["request"])
        cells = " | ".join(f"{r['gap']:.2f} / {r['TA']:.1f} / " + (f"{r['test_KL']:.3f}" if "test_KL" in r else "-")
                           for r in mine)
        lines.append(f"| {m} | {cells} | {np.mean([r['RTE'] for r in mine]):.2f} | {mine[-1]['cumulative_RTE']:.2f} |")
    return "\n".join(lines)


def sequential_chart(rows: list[dict], path: Path, title: str, provenance: dict | None = None) -> None:
    """After each request: test accuracy (Retrain's too), the prediction KL from that request's
    Retrain on the test set (solid) and on everything forgotten so far (dashed), and the
    cumulative run time (Retrain: one retraining)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (accuracy, distance, cost) = plt.subplots(1, 3, figsize=(11, 3.2), dpi=90)
    for i, m in enumerate(dict.fromkeys(r["method"] for r in rows)):
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: r["request"])
        k = [r["request"] for r in mine]
        style = dict(marker="o", color=f"C{i}", label=m)
        accuracy.plot(k, [r["TA"] for r in mine], **style)
        if m != "retrain" and all("test_KL" in r for r in mine):
            distance.plot(k, [r["test_KL"] for r in mine], **style)
            distance.plot(k, [r["forget_KL"] for r in mine], marker="x", linestyle="--", color=f"C{i}")
        cost.plot(k, [r["cumulative_RTE"] for r in mine], **style)
    accuracy.set_ylabel("test accuracy (%)")
    distance.set_ylabel("KL from Retrain (nats)\nsolid: test, dashed: forgotten")
    cost.set_ylabel("cumulative run time (s)")
    for axis in (accuracy, distance, cost):
        axis.set_xticks(sorted({r["request"] for r in rows}))
        axis.set_xlabel("requests so far")
        axis.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, provenance)


def write_sequential_report(rows: list[dict], out_dir: str | Path, name: str, title: str, extra: dict | None = None,
                            provenance: dict | None = None) -> str:
    """Rows of :func:`~wsscl_fast.sequential.compare_sequential` as ``name``.json, .md and .png; returns the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = sequential_table(rows)
    _write_json(out_dir / f"{name}.json", {"title": title, **(extra or {}), "rows": rows})
    _write_markdown(out_dir / f"{name}.md", title, table, provenance)
    sequential_chart(rows, out_dir / f"{name}.png", title, provenance)
    return table
