"""The README's Python examples run as written, and its result tables are the results files'."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})


def test_readme_result_tables_match_the_results_files():
    """Every `<!-- table: benchmarks/results/NAME.md -->` block is that file's table."""
    import subprocess
    import sys

    text = README.read_text()
    assert "<!-- table: " in text, "the README quotes no result tables"
    check = subprocess.run([sys.executable, "-m", "benchmarks.update_readme", "--check"], capture_output=True, text=True,
                           cwd=README.parent)
    assert check.returncode == 0, check.stdout + check.stderr
