"""Every committed result under benchmarks/results says where it came from: the commit, date,
device and command that made it (JSON: ``environment`` and ``command``; Markdown: a
``Provenance:`` line; PNG: a "Provenance" text chunk)."""
import datetime
import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
COMMIT = re.compile(r"^[0-9a-f]{40}$")  # a clean checkout's commit: no "+dirty", no "unknown"
FILES = sorted(p for p in RESULTS.glob("*") if p.is_file()) if RESULTS.is_dir() else []


def _check(commit: str, date: str, device: str, command: str, where: Path) -> None:
    assert COMMIT.match(commit), f"{where.name}: commit {commit!r} is not a clean 40-hex commit"
    assert datetime.datetime.fromisoformat(date).tzinfo is not None, f"{where.name}: date {date!r} has no time zone"
    assert device.strip(), f"{where.name}: no device"
    assert command.startswith("python -m "), f"{where.name}: command {command!r}"


def _markdown_stamp(path: Path) -> dict:
    lines = [line for line in path.read_text().splitlines() if line.startswith("Provenance: ")]
    assert len(lines) == 1, f"{path.name}: expected one 'Provenance:' line, found {len(lines)}"
    return dict(re.findall(r"(\w+) `([^`]*)`", lines[0]))


def _png_stamp(path: Path) -> dict:
    from PIL import Image

    with Image.open(path) as image:
        assert "Provenance" in image.text, f"{path.name}: no Provenance text chunk"
        return json.loads(image.text["Provenance"])


@pytest.mark.committed
@pytest.mark.skipif(not FILES, reason="no benchmarks/results in this tree (an installed-package run)")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_result_file_names_its_commit_date_device_and_command(path):
    if path.suffix == ".json":
        result = json.loads(path.read_text())
        environment = result["environment"]
        _check(environment["git_commit"], environment["date"], environment["device"], result["command"], path)
    elif path.suffix in (".md", ".png"):
        stamp = _markdown_stamp(path) if path.suffix == ".md" else _png_stamp(path)
        _check(stamp["commit"], stamp["date"], stamp["device"], stamp["command"], path)
    else:
        pytest.fail(f"{path.name}: results are .json, .md or .png")


def test_the_stamp_round_trips_through_markdown_and_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wsscl_fast.report import provenance_line, save_figure

    stamp = dict(commit="a" * 40, date="2026-12-01T00:00:00+00:00", device="CPU (2 threads)",
                 command="python -m benchmarks.x --y 1")
    (tmp_path / "r.md").write_text(f"# t\n\n{provenance_line(stamp)}\n")
    save_figure(plt.figure(), tmp_path / "r.png", stamp)
    assert _markdown_stamp(tmp_path / "r.md") == stamp
    assert _png_stamp(tmp_path / "r.png") == stamp


def test_source_commit_names_the_checkout_or_nothing_for_an_installed_package():
    import os

    from wsscl_fast.version import source_commit

    commit = source_commit()
    if os.environ.get("WSSCL_TEST_INSTALLED") == "1":  # the wheel in site-packages: no checkout around it
        assert commit is None
    else:
        assert re.match(r"^[0-9a-f]{40}(\+dirty)?$", commit), commit
