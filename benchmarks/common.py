"""Helpers shared by the benchmark scripts: environment stamp, timing statistics, output paths."""
from __future__ import annotations

import datetime
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
    """Where and when a result was measured."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device is not None and device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
    else:
        info["device"] = f"CPU ({info['cpu_threads']} threads)"
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        pass
    return info


def median_time(fn, repeats: int = 10, warmup: int = 2) -> float:
    """Median wall seconds of ``fn()`` on the CPU."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def wsscl_vs_salun(summary: list[dict]) -> dict | None:
    """The quality bar of a comparison: WSS-CL's mean Avg. Gap against SalUn's (None unless
    both ran), with WSS-CL's mean RTE; ``summary`` is ``report.summarize``'s output."""
    by_method = {entry["method"]: entry for entry in summary}
    if "wsscl" not in by_method or "salun" not in by_method:
        return None
    wsscl, salun = by_method["wsscl"], by_method["salun"]
    return dict(wsscl_gap=wsscl["gap"], salun_gap=salun["gap"], wsscl_no_worse_than_salun=wsscl["gap"] <= salun["gap"],
                wsscl_rte=wsscl["RTE"])


def print_verdict(verdict: dict | None) -> None:
    if verdict:
        print(f"WSS-CL gap {verdict['wsscl_gap']:.2f} vs SalUn {verdict['salun_gap']:.2f}: "
              f"{'no worse' if verdict['wsscl_no_worse_than_salun'] else 'WORSE'}; WSS-CL RTE {verdict['wsscl_rte']:.1f} s")


def write_json(payload: dict, path: Path) -> None:
    from wsscl_fast.checkpoint import atomic_write_bytes

    atomic_write_bytes(json.dumps(payload, indent=2, default=str).encode(), path)
