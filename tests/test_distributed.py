"""torchrun --nproc_per_node=2 with gloo on the CPU gives the single-process loss, gradients,
masks, unlearned weights and metrics; a CLI run under torchrun writes one set of files."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(command, timeout=600):
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_ranks_equal_one_process(tmp_path):
    _run([sys.executable, str(HERE / "distributed_check.py"), str(tmp_path / "single.pt")])
    _run([*TORCHRUN, str(HERE / "distributed_check.py"), str(tmp_path / "ddp.pt")])
    single, ddp = (torch.load(tmp_path / name, weights_only=True) for name in ("single.pt", "ddp.pt"))
    for a, b in zip(single["saliency"], ddp["saliency"]):
        # |sum of gradients|: the all-reduce adds the two ranks' halves in another order than one
        # process does, so a coordinate near 0 can differ by a few fp32 ulps of the largest one
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(a.abs().max()))
    for method in ("ft", "wsscl"):
        for key, value in single[method]["state"].items():
            torch.testing.assert_close(ddp[method]["state"][key], value, rtol=1e-4, atol=1e-5, msg=f"{method} {key}")
        for name, value in single[method]["metrics"].items():
            assert abs(ddp[method]["metrics"][name] - value) < 0.5, (method, name)  # one sample may flip at most


def test_cli_unlearn_under_torchrun_writes_one_report(tmp_path):
    original = tmp_path / "original"
    _run([sys.executable, "-m", "wsscl_fast", "train", "--data", "digits", "--epochs", "1", "--out", str(original),
          "--quiet"])
    out = tmp_path / "unlearned"
    _run([*TORCHRUN, "-m", "wsscl_fast", "unlearn", "--checkpoint", str(original / "model.pt"), "--method", "ft",
          "--set", "epochs=1", "--device", "cpu", "--out", str(out), "--quiet"])
    assert sorted(p.name for p in out.iterdir()) == ["record.json", "unlearn.json", "unlearned.pt"]
