"""Copy result tables into the README: every block between

    <!-- table: benchmarks/results/NAME.md -->
    ...
    <!-- /table -->

is replaced by that file's tables (its title line dropped). `--check` only reports blocks
that differ (tests/test_readme.py runs it), so the README never drifts from the results.

    python benchmarks/update_readme.py [--check]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def table_of(path: Path) -> str:
    """The body of a results Markdown file: everything after its "# title" line."""
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


def refreshed(readme: str) -> tuple[str, list[str]]:
    """(the README with every block refreshed, the paths of the blocks that changed)."""
    changed = []

    def replace(match):
        body = table_of(REPO / match["path"])
        if body != match["body"]:
            changed.append(match["path"])
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, readme), changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = parser.parse_args(argv)
    path = REPO / "README.md"
    text, changed = refreshed(path.read_text())
    if args.check:
        for name in changed:
            print(f"README block for {name} differs from the file; run python benchmarks/update_readme.py")
        return 1 if changed else 0
    if changed:
        tmp = path.with_name(".README.md.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    print(f"refreshed {len(changed)} block(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
