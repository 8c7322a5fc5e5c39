"""What runs by default, as a user runs it: a fresh process without TRITON_INTERPRET (which the
test suite's conftest sets) and without WSSCL_BACKEND. On a CPU with the extension built, every
fused op of WSS-CL must run on ``cpp``; the record and ``result.info`` say so."""
import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU default (a GPU changes it)")

UNLEARN_TINY = """
import json
from wsscl_fast import WSSCLConfig, Runtime, unlearn
from wsscl_fast.data import load_digits_bundle, make_scenario
from wsscl_fast.recipes import recipe_for
bundle = load_digits_bundle()
model = recipe_for(bundle, width=8).build_model(bundle)
scenario = make_scenario(bundle, "class:3")
config = WSSCLConfig(forget_epochs=1, finetune_epochs=1, batch_size=64, aug_flip=False, view_flip=False)
result = unlearn(model, scenario.forget, scenario.retain, "wsscl", config, runtime=Runtime(progress=False))
print(json.dumps(result.info["backends"]))
"""
WSSCL_OPS = {"saliency", "masked_sgd_step", "infonce_loss"}


def _user_environment(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "WSSCL_BACKEND")}
    return {**env, **extra}


def _ops_run_by(env) -> dict:
    done = subprocess.run([sys.executable, "-c", UNLEARN_TINY], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("extra,expected", [
    ({}, "cpp"),  # the CPU default
    ({"TRITON_INTERPRET": "1"}, "triton"),  # interpreted Triton only when asked for
    ({"WSSCL_BACKEND": "torch"}, "torch"),
])
def test_unlearn_reports_the_backend_that_ran(extra, expected):
    assert _ops_run_by(_user_environment(**extra)) == {op: [expected] for op in WSSCL_OPS}


def test_cli_record_names_the_default_backend(tmp_path):
    env = _user_environment()
    cli = [sys.executable, "-m", "wsscl_fast"]
    subprocess.run([*cli, "train", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "b"), "--quiet"],
                   env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([*cli, "unlearn", "--checkpoint", str(tmp_path / "b" / "model.pt"), "--forget", "class:3",
                    "--set", "forget_epochs=1", "--set", "finetune_epochs=1", "--out", str(tmp_path / "u"), "--quiet"],
                   env=env, check=True, capture_output=True, timeout=300)
    record = json.loads((tmp_path / "u" / "record.json").read_text())
    assert record["backends"] == {op: ["cpp"] for op in WSSCL_OPS}
