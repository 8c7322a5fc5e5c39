"""Re-render a report's Markdown table and plots from its JSON, stamped with the provenance the
JSON records (its environment and command): no number is re-measured.

    python -m benchmarks.publish.render_report benchmarks/results/quality_memorise_random.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.harness import provenance

from wsscl_fast.report import render_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path, help="JSON files written by report.write_report")
    for path in parser.parse_args(argv).reports:
        result = json.loads(path.read_text())
        render_report(result["rows"], path.parent, path.stem, result["title"],
                      provenance(result["environment"], result["command"]))
        print(f"rendered {path.with_suffix('.md')} and {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
