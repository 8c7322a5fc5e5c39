"""Which code this is: the package version's one home (setup.py reads it, ``wsscl-fast --version``
prints it), and the source commit when the package runs from a git checkout."""
from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

__version__ = "0.2.0"


def source_commit() -> str | None:
    """The git commit of the checkout this package was imported from, with "+dirty" when tracked
    files other than results (``benchmarks/results/``, what benchmarks write) differ from it;
    None for an installed package (no checkout around it)."""
    checkout = Path(__file__).resolve().parents[1]

    def git(*args):
        return subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True, timeout=30)
    try:
        inside = git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.TimeoutExpired):
        return None
    if inside.returncode or Path(inside.stdout.strip()).resolve() != checkout:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results").stdout.strip()
    return git("rev-parse", "HEAD").stdout.strip() + ("+dirty" if dirty else "")


def code_version() -> str:
    """The source commit, else the installed package's version: what made a result."""
    return source_commit() or f"wsscl_fast {__version__}"


def utc_now() -> str:
    """The current time, the one spelling of every stamp: ISO 8601, UTC, seconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def provenance_stamp(device: str, command: str) -> dict:
    """The stamp every report, record table and result file carries: which code, when, where, and the command."""
    return dict(commit=code_version(), date=utc_now(), device=device, command=command)
