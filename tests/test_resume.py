"""Resumable runs: a run stopped at any epoch boundary and resumed ends bit-identical to an
uninterrupted one; signals stop cleanly; bad states are refused; NaN weights are never saved."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from wsscl_fast import Runtime, unlearn
from wsscl_fast.data import load_bundle, make_scenario
from wsscl_fast.recipes import recipe_for
from wsscl_fast.record import weights_digest
from wsscl_fast.runstate import RunInterrupted, RunState
from wsscl_fast.training import train_model

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def setup():
    bundle = load_bundle("digits", seed=0)
    recipe = recipe_for(bundle)
    torch.manual_seed(0)
    model = train_model(recipe.build_model(bundle), bundle.train, recipe.train.replace(epochs=2), torch.device("cpu"),
                        progress=False)
    configs = dict(recipe.method_configs, retrain=recipe.train.replace(epochs=3))
    configs["wsscl"] = configs["wsscl"].replace(forget_epochs=2, finetune_epochs=2, finetune_schedule="cosine")
    configs["rl"] = configs["rl"].replace(epochs=2)
    scenarios = {spec: make_scenario(bundle, spec, seed=0) for spec in ("random:0.1", "class:3")}
    return model, scenarios, configs, bundle.validation


class StopAfterSaves(RunState):
    """A run state that asks the run to stop after its n-th checkpoint, as a signal would."""

    def __init__(self, path, fingerprint, stop_after: int):
        super().__init__(path, fingerprint)
        self.saves, self.stop_after = 0, stop_after

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        self.saves += 1
        self.stop_requested = self.saves == self.stop_after


#: WSS-CL's holdout checkpoint choice, whose best candidate so far must survive a resume; on a
#: class (random samples of this model are already at the holdout's error, so it would not train), stopped
#: at the last checkpoint, so that only the restored candidates can give the best one back
HOLDOUT_CHOICE = dict(checkpoint_choice="holdout", forget="class:3")


def run(setup, method, run_state=None, forget="random:0.1", **fields):
    model, scenarios, configs, holdout = setup
    scenario = scenarios[forget]
    result = unlearn(model, scenario.forget, scenario.retain, method, configs[method].replace(**fields), seed=3,
                     holdout=holdout, runtime=Runtime(progress=False, run_state=run_state))
    return weights_digest(result.model.state_dict())


@pytest.mark.parametrize("method, stop_after, fields", [
    ("wsscl", 1, {}), ("wsscl", 3, {}), ("wsscl", 4, HOLDOUT_CHOICE),
    ("rl", 1, {}), ("retrain", 2, {}),
    ("ft", 4, {})])
def test_stopped_and_resumed_run_is_bit_identical(setup, tmp_path, method, stop_after, fields):
    expected = run(setup, method, **fields)
    path = tmp_path / "run_state.pt"
    with pytest.raises(RunInterrupted, match="resume"):
        run(setup, method, StopAfterSaves(path, {"method": method}, stop_after), **fields)
    assert path.is_file()
    assert run(setup, method, RunState(path, {"method": method}, resume=True), **fields) == expected


def test_resume_refuses_another_runs_state_and_a_missing_one(tmp_path):
    path = tmp_path / "run_state.pt"
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        RunState(path, {"seed": 0}, resume=True)
    model = torch.nn.Linear(2, 2)
    state = RunState(path, {"seed": 0, "method": "ft"})
    state.enter_loop("ft")
    state.save(1, "ft", model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"different run \(differs in \['seed'\]\)"):
        RunState(path, {"seed": 1, "method": "ft"}, resume=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable run state"):
        RunState(path, {"seed": 0, "method": "ft"}, resume=True)


def test_a_stop_before_the_first_checkpoint_promises_no_resume(tmp_path):
    state = RunState(tmp_path / "run_state.pt", {"seed": 0})
    state.stop_requested = True
    with pytest.raises(RunInterrupted, match="before the first checkpoint.*start again without --resume"):
        state.check_stop("ft", 3)
    model = torch.nn.Linear(2, 2)
    state.enter_loop("ft")
    state.save(4, "ft", model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(RunInterrupted, match="the last checkpoint is .*run_state.pt \\(resume with --resume\\)"):
        state.check_stop("ft", 5)


def test_nan_weights_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run_state.pt"
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = RunState(path, {})
    state.enter_loop("wsscl forget")
    state.save(5, "wsscl forget", model, optimizer)
    good = path.read_bytes()
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"wsscl forget: weight holds NaN or inf after step 10"):
        state.save(10, "wsscl forget", model, optimizer)
    assert path.read_bytes() == good


def _cli(*args):
    return [sys.executable, "-m", "wsscl_fast", *args]


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("original")
    subprocess.run(_cli("train", "--data", "digits", "--epochs", "2", "--out", str(out), "--quiet"), check=True)
    return out / "model.pt"


# one loop of 4 epochs: the process is killed after its first checkpoint (multi-loop resumes of
# WSS-CL are covered in process above)
UNLEARN = ("--method", "ft", "--forget", "random:0.1", "--set", "epochs=4", "--quiet", "--device", "cpu")


@pytest.fixture(scope="module")
def uninterrupted(digits_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    subprocess.run(_cli("unlearn", "--checkpoint", str(digits_checkpoint), "--out", str(out), *UNLEARN), check=True)
    assert not (out / "run_state.pt").exists(), "a finished run removes its run state"
    return torch.load(out / "unlearned.pt", weights_only=True)["state_dict"]


def _kill_after_first_checkpoint(process, state_path, sig):
    deadline = time.time() + 120
    while not state_path.exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(sig)
    return process.wait(timeout=120)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_cli_run_resumes_to_the_uninterrupted_result(digits_checkpoint, uninterrupted, tmp_path, sig):
    cut = tmp_path / "cut"
    process = subprocess.Popen(_cli("unlearn", "--checkpoint", str(digits_checkpoint), "--out", str(cut), *UNLEARN),
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    code = _kill_after_first_checkpoint(process, cut / "run_state.pt", sig)
    stderr = process.stderr.read()
    if sig == signal.SIGTERM:
        assert code == 130 and "stopped by a signal" in stderr and "--resume" in stderr
    else:
        assert code == -signal.SIGKILL
    assert not (cut / "unlearned.pt").exists()
    assert not [p for p in cut.iterdir() if p.name.endswith(".tmp")], "no half-written files"
    subprocess.run(_cli("unlearn", "--checkpoint", str(digits_checkpoint), "--out", str(cut), "--resume", *UNLEARN),
                   check=True)
    resumed = torch.load(cut / "unlearned.pt", weights_only=True)["state_dict"]
    assert weights_digest(resumed) == weights_digest(uninterrupted)
