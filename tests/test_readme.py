"""The README's Python examples run as written and do what their comments say; its result
tables are the results files'."""
import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _run(index: int) -> tuple[dict, str]:
    """(the block's namespace, what it printed)."""
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), namespace)
    return namespace, printed.getvalue()


def _unlearning_forgot_class_3(ns, printed):
    """Block 0: forgetting every "3" of digits, metrics and audit printed."""
    metrics = ns["result"].metrics
    assert metrics["UA"] >= 80 and metrics["RA"] >= 80, metrics  # the 3s are forgotten, the rest kept
    assert "'UA'" in printed and "relearn" in printed, printed
    assert set(ns["result"].timings) == {"saliency", "targets", "forget", "contrastive"}


def _own_model_left_untouched(ns, printed):
    """Block 1: any nn.Module; the caller's model is copied, not changed."""
    before, after = ns["model"].state_dict(), ns["result"].model.state_dict()
    assert ns["result"].model is not ns["model"]
    assert any(not torch.equal(before[k], after[k]) for k in before)


def _infonce_trained_the_encoder(ns, printed):
    """Block 2: a finite loss whose gradient reached the encoder."""
    assert torch.isfinite(ns["loss"]) and ns["loss"] > 0
    assert ns["encoder"][1].weight.grad is not None and ns["encoder"][1].weight.grad.abs().sum() > 0


def _saliency_matches_the_model(ns, printed):
    """Block 3: one saliency tensor per parameter; ratio=0.5 gives full weight to about half of them."""
    shapes = [tuple(p.shape) for p in ns["model"].parameters()]
    assert [tuple(s.shape) for s in ns["saliency"]] == shapes
    assert all(((s >= 0) & (s <= 1)).all() for s in ns["saliency"])
    full = sum(int((s == 1).sum()) for s in ns["saliency"]) / sum(s.numel() for s in ns["saliency"])
    assert 0.45 <= full <= 0.55, full
    assert len(ns["mask"]) == len(shapes)


CHECKS = [_unlearning_forgot_class_3, _own_model_left_untouched, _infonce_trained_the_encoder,
          _saliency_matches_the_model]


def test_every_example_has_a_check():
    assert len(BLOCKS) == len(CHECKS), "a README python block was added or removed: give it a check here"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_does_what_it_says(index):
    CHECKS[index](*_run(index))


@pytest.mark.committed
def test_readme_result_tables_match_the_results_files():
    """Every `<!-- table: benchmarks/results/NAME.md -->` block is that file's table."""
    text = README.read_text()
    assert "<!-- table: " in text, "the README quotes no result tables"
    check = subprocess.run([sys.executable, "-m", "benchmarks.publish.update_readme", "--check"], capture_output=True, text=True,
                           cwd=README.parent)
    assert check.returncode == 0, check.stdout + check.stderr
