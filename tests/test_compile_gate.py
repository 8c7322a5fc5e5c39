"""The ahead-of-time compile gate (no GPU needed): the quick subset of the real kernels passes,
and the gate rejects what a GPU would reject. Each runs in its own process, without
TRITON_INTERPRET and with an empty Triton cache."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]


TESTS = Path(__file__).resolve().parent


def _environment(cache_dir: Path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_DUMP_PTXAS_LOG="1", TRITON_ALWAYS_COMPILE="1", TRITON_CACHE_DIR=str(cache_dir))
    return env


def test_quick_gate_passes_on_the_real_kernels():
    result = subprocess.run([sys.executable, "-m", "wsscl_fast.kernels.compile_gate", "--quick", "--jobs", "2"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " 0 failed" in result.stdout
    for kernel in ("infonce fwd", "infonce bwd anchors", "infonce bwd negatives", "infonce bwd finish", "adamw", "sgd",
                   "radix histogram", "saliency emit"):
        assert f"| {kernel}" in result.stdout, kernel


def test_gate_rejects_what_a_gpu_rejects(tmp_path):
    result = subprocess.run([sys.executable, str(TESTS / "gate_fixtures.py")], capture_output=True, text=True,
                            env=_environment(tmp_path / "triton_cache"), timeout=300, cwd=TESTS)
    assert result.returncode == 0, result.stderr[-3000:]
    failures = json.loads(result.stdout)
    assert any("does not compile" in f and "Mismatched type" in f for f in failures["branch shapes"])
    assert any("shared memory" in f for f in failures["shared memory"])
    assert any("tensor-core" in f for f in failures["ieee dot where tensor cores are required"])
    assert any("registers > 8" in f for f in failures["register cap"])
    assert failures["a good kernel"] == []
