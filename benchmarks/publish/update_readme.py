"""Copy result tables into the README and the docs: every block between

    <!-- table: benchmarks/results/NAME.md -->      (or NAME.md#K: only its K-th table, from 1)
    ...
    <!-- /table -->

is replaced by that file's tables (its title line dropped). `--check` only reports blocks
that differ (tests/test_readme.py runs it), so the documents never drift from the results.

    python -m benchmarks.publish.update_readme [--check]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # benchmarks/publish/ -> the repository
DOCUMENTS = ("README.md", "docs/audit.md")  #: the files whose blocks are kept in step with the results
BLOCK = re.compile(r"(<!-- table: (?P<path>[^ #]+)(#(?P<index>\d+))? -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def table_of(path: Path, index: int | None = None) -> str:
    """The body of a results Markdown file: everything after its "# title" line but its
    "Provenance:" line (that stays in the file), or only its ``index``-th table (1-based; a table
    is a run of lines starting with "|")."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("Provenance: ")]
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    if index is None:
        return "\n".join(lines).strip() + "\n"
    tables = re.findall(r"(?:^\|.*\n?)+", "\n".join(lines) + "\n", re.M)
    if not 1 <= index <= len(tables):
        raise ValueError(f"{path} has {len(tables)} table(s), no table #{index}")
    return tables[index - 1].rstrip("\n") + "\n"


def refreshed(document: str) -> tuple[str, list[str]]:
    """(the document with every block refreshed, the sources of the blocks that changed)."""
    changed = []

    def replace(match):
        body = table_of(REPO / match["path"], int(match["index"]) if match["index"] else None)
        if body != match["body"]:
            changed.append(match["path"] + (f"#{match['index']}" if match["index"] else ""))
        return match.group(1) + body + match.group(6)

    return BLOCK.sub(replace, document), changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = parser.parse_args(argv)
    stale = 0
    for document in DOCUMENTS:
        path = REPO / document
        text, changed = refreshed(path.read_text())
        stale += len(changed)
        if args.check:
            for name in changed:
                print(f"{document}: the block of {name} differs from the file; run python -m benchmarks.publish.update_readme")
        elif changed:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            tmp.replace(path)
    if args.check:
        return 1 if stale else 0
    print(f"refreshed {stale} block(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
