"""The one benchmark harness: timing (CUDA and CPU), environment capture, result writing, and
the quality bench's verdict. Every script runs as ``python -m benchmarks.FOLDER.NAME`` from the repository root.

- CUDA: :func:`cuda_time_ms`, Triton's ``do_bench`` (L2 flushed, median of repeated runs).
- CPU: :func:`interleaved_median_times`, variants timed in alternating rounds.
- :func:`environment` stamps date, device, library versions and git commit into each result.
- :func:`wsscl_vs_best_baseline`: the quality bench's verdict.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CIFAR10 = Path(os.environ.get("WSSCL_CIFAR10", REPO.parent / "shared" / "data" / "cifar10"))


def environment(device: torch.device | None = None) -> dict:
    """Where, when and from which code version a result was measured: date, git commit (of the
    wsscl_fast checkout that ran, "+dirty" with uncommitted edits), device, thread count, versions."""
    from wsscl_fast.record import device_name, software_versions
    from wsscl_fast.version import source_commit, utc_now

    return {"date": utc_now(), "git_commit": source_commit() or "unknown", "device": device_name(device or "cpu"),
            "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
            **software_versions()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cuda_time_ms(fn, rep_ms: float = 100.0) -> float:
    """Median milliseconds of ``fn()`` on the current CUDA device, by ``triton.testing.do_bench``:
    it synchronises, flushes the L2 cache before each run, warms up for 25 ms and repeats for
    about ``rep_ms``."""
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=rep_ms, return_mode="median"))


def interleaved_median_times(fns: dict, rounds: int = 15, warmup: int = 2) -> dict:
    """Median wall seconds of each ``fns[name]()`` on the CPU, timed in alternating rounds
    (one call of each per round) so that drift in a shared machine's speed hits every
    variant alike; sequential medians on such a machine can move the ratio by 30%."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def wsscl_vs_best_baseline(rows: list[dict], methods) -> dict | None:
    """The bar WSS-CL is held to, from per-seed ``rows``: WSS-CL's mean Avg. Gap is the lowest of all
    unlearning ``methods`` and its mean RTE at most that of the best baseline (the one with the
    lowest mean gap); and, where the row ``wsscl [contrastive_weight=0]`` ran, whether the
    contrastive term lowers the mean gap. None unless WSS-CL and a baseline ran."""
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    gap = {m: mean([r["gap"] for r in rows if r["method"] == m]) for m in methods if any(r["method"] == m for r in rows)}
    rte = {m: mean([r["RTE"] for r in rows if r["method"] == m]) for m in gap}
    baselines = [m for m in gap if m != "wsscl"]
    if "wsscl" not in gap or not baselines:
        return None
    best = min(baselines, key=gap.get)
    verdict = dict(wsscl_gap=gap["wsscl"], best_baseline=best, best_baseline_gap=gap[best], wsscl_rte=rte["wsscl"],
                   best_baseline_rte=rte[best], gap_lowest=gap["wsscl"] < gap[best],
                   rte_within_best_baseline=rte["wsscl"] <= rte[best])
    verdict["met"] = verdict["gap_lowest"] and verdict["rte_within_best_baseline"]
    ablation = [r["gap"] for r in rows if r["method"] == "wsscl [contrastive_weight=0]"]
    if ablation:
        verdict.update(without_contrastive_gap=mean(ablation), contrastive_term_helps=gap["wsscl"] < mean(ablation))
    return verdict


def print_verdict(verdict: dict | None) -> None:
    if verdict:
        line = (f"WSS-CL gap {verdict['wsscl_gap']:.2f} vs best baseline {verdict['best_baseline']} "
                f"{verdict['best_baseline_gap']:.2f}; RTE {verdict['wsscl_rte']:.1f} s vs "
                f"{verdict['best_baseline_rte']:.1f} s: {'bar met' if verdict['met'] else 'bar NOT met'}")
        if "without_contrastive_gap" in verdict:
            line += (f"; without the contrastive term {verdict['without_contrastive_gap']:.2f} "
                     f"({'the term helps' if verdict['contrastive_term_helps'] else 'the term does not help'})")
        print(line)


def command_line(module: str | None = None, argv=None) -> str:
    """The command a result records, ``python -m MODULE ARGS``: ``module`` is a script's
    ``__spec__.name`` (default: the running ``-m`` module), ``argv`` the arguments its ``main``
    was given (default: the process's)."""
    import __main__
    import sys

    module = module or getattr(getattr(__main__, "__spec__", None), "name", None) or Path(sys.argv[0]).stem
    return f"python -m {module} {' '.join(sys.argv[1:] if argv is None else argv)}".strip()


def provenance(measured_with: dict, command: str | None = None) -> dict:
    """The stamp that Markdown and PNG results carry (the JSON carries ``environment`` whole):
    commit, date and device of an :func:`environment`, and the command."""
    return dict(commit=measured_with["git_commit"], date=measured_with["date"], device=measured_with["device"],
                command=command or command_line())


def write_json(payload: dict, path: Path) -> None:
    """Write a result atomically, with the command that made it (unless the payload names one)."""
    from wsscl_fast.checkpoint import atomic_write_bytes

    atomic_write_bytes(json.dumps({"command": command_line(), **payload}, indent=2, default=str).encode(), path)
