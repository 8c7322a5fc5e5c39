"""The ahead-of-time compile gate: every Triton launch the launchers can choose, compiled for
sm_80 and sm_90 with no GPU, checked against what the GPU enforces.

    python -m wsscl_fast.kernels.compile_gate            # full sweep (make gate)
    python -m wsscl_fast.kernels.compile_gate --quick    # the subset the test suite runs

It fails (exit 1) on a compile error, shared memory over the arch's per-block limit, spills in
a bf16 / fp16 / tf32 configuration, or a bf16 / fp16 / tf32 ``tl.dot`` without tensor-core
instructions; it prints registers, spills, shared memory and 128-bit loads per configuration.
The configurations come from each kernel module's ``compile_specs()``, which reads the same
launch table as its launcher. Each compile runs in a fresh process environment without
``TRITON_INTERPRET``, with every compile forced (no Triton cache hit) so that ptxas reports its statistics.
"""
from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

from . import TARGET_ARCHS

KERNEL_MODULES = ("infonce", "masked_update", "saliency_select")
_READY = "WSSCL_COMPILE_GATE_CHILD"


def all_specs(quick: bool = False, archs=TARGET_ARCHS):
    """The compile specs of every kernel module, deduplicated (same binary, one compile)."""
    specs, seen = [], set()
    for name in KERNEL_MODULES:
        for spec in importlib.import_module(f"wsscl_fast.kernels.{name}").compile_specs():
            if spec.arch in archs and (spec.quick or not quick) and spec.key not in seen:
                seen.add(spec.key)
                specs.append(spec)
    return specs


def _compile_one(args):
    index, quick, archs = args
    from wsscl_fast.kernels.aot import compile_report
    report = compile_report(all_specs(quick, archs)[index])
    return index, report.registers, report.spill_bytes, report.shared, report.mma, report.vector_loads, report.error


def run_gate(quick: bool, archs, jobs: int):
    """Compile every spec in ``jobs`` processes; returns the reports in spec order."""
    from wsscl_fast.kernels.aot import CompileReport
    specs = all_specs(quick, archs)
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        rows = pool.map(_compile_one, [(i, quick, archs) for i in range(len(specs))], chunksize=1)
    reports = []
    for index, regs, spills, shared, mma, vectors, error in sorted(rows):
        reports.append(CompileReport(specs[index], regs, spills, shared, mma, vectors, error))
    return reports


def markdown_table(reports) -> str:
    lines = ["| arch | configuration | warps | stages | regs | spill B | shared B | mma | v4 loads | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        s = r.spec
        verdict = "; ".join(r.failures()) or "ok"
        lines.append(f"| sm_{s.arch} | {s.label} | {s.num_warps} | {s.num_stages} | {r.registers} | {r.spill_bytes} "
                     f"| {r.shared} | {'yes' if r.mma else 'no'} | {r.vector_loads} | {verdict} |")
    return "\n".join(lines)


def _child_environment(cache_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update({_READY: "1", "TRITON_DUMP_PTXAS_LOG": "1", "TRITON_ALWAYS_COMPILE": "1",
                "TRITON_CACHE_DIR": cache_dir})
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="compile only the quick subset (sm_90, large D)")
    parser.add_argument("--arch", type=int, nargs="+", default=list(TARGET_ARCHS), choices=TARGET_ARCHS,
                        help="target archs")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel compiles")
    parser.add_argument("--out", help="also write the table as Markdown to this file")
    args = parser.parse_args(argv)
    if os.environ.get(_READY) != "1" or "triton" in sys.modules:
        # the interpreter must be off and the cache empty before triton is imported
        args_given = argv if argv is not None else sys.argv[1:]
        command = [sys.executable, "-m", "wsscl_fast.kernels.compile_gate", *args_given]
        with tempfile.TemporaryDirectory(prefix="wsscl_gate_") as cache_dir:  # an empty cache, removed afterwards
            return subprocess.run(command, env=_child_environment(cache_dir)).returncode
    import triton
    start = time.time()
    reports = run_gate(args.quick, tuple(args.arch), max(1, args.jobs))
    table = markdown_table(reports)
    failed = [r for r in reports if r.failures()]
    print(table)
    print(f"\n{len(reports)} configurations compiled with Triton {triton.__version__} in {time.time() - start:.0f} s: "
          f"{len(failed)} failed")
    if args.out:
        from wsscl_fast.checkpoint import atomic_write_bytes
        from wsscl_fast.report import provenance_line
        from wsscl_fast.version import provenance_stamp

        stamp = provenance_stamp(f"none (Triton {triton.__version__}, ptxas from the triton wheel)",
                                 "python -m wsscl_fast.kernels.compile_gate "
                                 + " ".join(argv if argv is not None else sys.argv[1:]))
        header = (f"# Ahead-of-time compile gate ({'quick subset' if args.quick else 'full sweep'})\n\n"
                  f"{provenance_line(stamp)}\n\n")
        atomic_write_bytes((header + table + "\n").encode(), args.out)
    for r in failed:
        print(f"FAIL sm_{r.spec.arch} {r.spec.label}: {'; '.join(r.failures())}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
