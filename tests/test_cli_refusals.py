"""What the command line refuses, and what it reads, so that a run never silently does something
other than what it was asked: fields a method ignores, a method named twice, options that would
do nothing, the checkpoint's ledger in `compare`, held-out samples named for forgetting, and
bare state_dicts where only their weights matter."""
import json

import pytest
import torch

from wsscl_fast.cli import main
from wsscl_fast.data import load_digits_bundle
from wsscl_fast.methods import METHODS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    return out / "model.pt"


@pytest.fixture(scope="module")
def forgot_class_3(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("u1")
    assert main(["unlearn", "--checkpoint", str(trained), "--forget", "class:3", "--method", "ft",
                 "--set", "epochs=1", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.parametrize("argv, message", [
    (["unlearn", "--method", "ft", "--set", "l1_alpha=100"], "ft does not read 'l1_alpha'"),
    (["unlearn", "--method", "ga", "--set", "lr=0.5"], "ga does not read 'lr'"),
    (["compare", "--methods", "ft", "--set", "ft.l1_alpha=100"], "ft does not read 'l1_alpha'"),
])
def test_a_field_the_method_does_not_read_is_refused_by_name(trained, tmp_path, capsys, argv, message):
    assert main([*argv, "--checkpoint", str(trained), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "reads:" in err, err
    assert not (tmp_path / "o").exists()


def test_the_record_holds_only_the_fields_the_method_read(forgot_class_3):
    config = json.loads((forgot_class_3 / "record.json").read_text())["config"]
    assert set(config) == set(METHODS["ft"].reads) and "l1_alpha" not in config and config["epochs"] == 1


def test_compare_refuses_a_method_named_twice_before_any_work(trained, tmp_path, capsys):
    assert main(["compare", "--checkpoint", str(trained), "--methods", "ft,ga,ft", "--out", str(tmp_path / "c"),
                 "--quiet"]) == 2
    assert "--methods names ft more than once" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("option", [["--out", "x"], ["--force"], ["--compile"], ["--execution", "fast"]])
def test_evaluate_offers_no_option_that_would_do_nothing(trained, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--checkpoint", str(trained), *option])
    assert stop.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_compare_reads_the_checkpoints_ledger(forgot_class_3, tmp_path, monkeypatch):
    """Class 3 was forgotten by u1: comparing class 5 on u1 retains no 3 (Retrain included)."""
    import wsscl_fast.comparisons as comparisons

    seen = {}

    def record_scenario(model, scenario, methods, configs, **kwargs):
        seen["scenario"] = scenario
        return []
    monkeypatch.setattr(comparisons, "compare", record_scenario)
    monkeypatch.setattr("wsscl_fast.cli.write_report", lambda *args, **kwargs: "")
    assert main(["compare", "--checkpoint", str(forgot_class_3 / "unlearned.pt"), "--forget", "class:5",
                 "--methods", "ft", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    retain_labels = {int(seen["scenario"].retain[i][1]) for i in range(len(seen["scenario"].retain))}
    assert 3 not in retain_labels and 5 not in retain_labels and retain_labels == set(range(10)) - {3, 5}


def test_a_validation_sample_named_for_forgetting_is_refused_as_such(trained, tmp_path, capsys):
    held_out = load_digits_bundle().validation.names[0]
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{held_out}\n")
    assert main(["unlearn", "--checkpoint", str(trained), "--forget", f"indices:{ids}", "--method", "ft",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert f"{held_out!r} is a validation-split sample, held out of training" in capsys.readouterr().err


def test_verify_takes_a_bare_state_dict(forgot_class_3, tmp_path, capsys):
    """verify only hashes the weights: a bare state_dict needs no architecture (verify has no --arch)."""
    bare = tmp_path / "bare.pt"
    torch.save(torch.load(forgot_class_3 / "unlearned.pt", weights_only=True)["state_dict"], bare)
    assert main(["verify", str(forgot_class_3 / "record.json"), str(bare)]) == 0
    assert "is the model described by" in capsys.readouterr().out


@pytest.fixture(scope="module")
def two_requests(forgot_class_3, tmp_path_factory):
    u2 = tmp_path_factory.mktemp("u2")
    assert main(["unlearn", "--checkpoint", str(forgot_class_3 / "unlearned.pt"), "--forget", "class:5", "--method",
                 "ft", "--set", "epochs=1", "--out", str(u2), "--quiet"]) == 0
    return forgot_class_3, u2


def test_verify_reads_every_earlier_record(two_requests, capsys):
    u1, u2 = two_requests
    assert main(["verify", str(u2 / "record.json"), str(u2 / "unlearned.pt")]) == 0
    assert "every earlier record (1) read and linked" in capsys.readouterr().out
    original = (u1 / "record.json").read_text()
    try:  # request 1's record edited in place: verify of request 2 must notice, and name request 1
        edited = json.loads(original)
        edited["metrics"]["UA"] = 0.0
        (u1 / "record.json").write_text(json.dumps(edited))
        assert main(["verify", str(u2 / "record.json"), str(u2 / "unlearned.pt")]) == 1
        assert "request 1's record" in capsys.readouterr().out
    finally:
        (u1 / "record.json").write_text(original)


def test_verify_notices_names_removed_from_the_ledger(two_requests, tmp_path, capsys):
    _, u2 = two_requests
    blob = torch.load(u2 / "unlearned.pt", weights_only=True)
    blob["ledger"]["forgotten"] = blob["ledger"]["forgotten"][10:]  # 10 deletions quietly dropped
    tampered = tmp_path / "tampered.pt"
    torch.save(blob, tampered)
    assert main(["verify", str(u2 / "record.json"), str(tampered)]) == 1
    out = capsys.readouterr().out
    assert "request 2: the model's ledger lists" in out and "not the ones its record" in out


def test_an_interrupted_compare_exits_130_with_one_line(trained, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("wsscl_fast.cli.run_comparison", interrupted)
    try:
        code = main(["compare", "--checkpoint", str(trained), "--methods", "ft", "--out", str(tmp_path / "c"),
                     "--quiet"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main() as a traceback")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and err == ["wsscl-fast compare: interrupted; nothing of this run was kept (outputs are "
                                   "written only when complete)"], err
    assert not (tmp_path / "c").exists()


def test_a_signal_outside_a_step_loop_interrupts_at_once(tmp_path):
    """SIGTERM during the audit or an evaluation (no step loop to stop at) must not be held back."""
    import os
    import signal

    from wsscl_fast.runstate import RunState

    state = RunState(tmp_path / "run_state.pt", {})
    with state.stop_on_signals():
        state.in_loop = True  # inside a loop: the signal asks for a stop at the next step boundary
        os.kill(os.getpid(), signal.SIGTERM)
        assert state.stop_requested
        state.in_loop, state.stop_requested = False, False
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass


def _ledger(path):
    return torch.load(path, weights_only=True)["ledger"]["forgotten"]


def test_after_two_classes_ta_counts_only_the_classes_that_remain(two_requests):
    """Classes 3 then 5: request 2's TA is on the 8 classes left, the test images of 3 and 5 apart."""
    from torch.utils.data import Subset

    from wsscl_fast.checkpoint import load_checkpoint
    from wsscl_fast.metrics import predict_split
    from wsscl_fast.recipes import model_from_checkpoint

    _, u2 = two_requests
    metrics = json.loads((u2 / "unlearn.json").read_text())["metrics"]
    bundle = load_digits_bundle()
    model = model_from_checkpoint(load_checkpoint(str(u2 / "unlearned.pt")), bundle, str(u2 / "unlearned.pt"))
    gone = torch.isin(bundle.test.labels, torch.tensor([3, 5]))
    remaining = predict_split(model, Subset(bundle.test, (~gone).nonzero().flatten().tolist())).accuracy
    removed = predict_split(model, Subset(bundle.test, gone.nonzero().flatten().tolist())).accuracy
    assert metrics["TA"] == pytest.approx(remaining) and metrics["forgotten_class_TA"] == pytest.approx(removed)


def test_a_random_request_draws_among_the_samples_not_yet_forgotten(forgot_class_3, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["unlearn", "--checkpoint", str(forgot_class_3 / "unlearned.pt"), "--forget", "random:0.05",
                 "--method", "ft", "--set", "epochs=1", "--out", str(out), "--quiet"]) == 0
    before, after = _ledger(forgot_class_3 / "unlearned.pt"), _ledger(out / "unlearned.pt")
    bundle = load_digits_bundle()
    label = dict(zip(bundle.train.names, bundle.train.labels.tolist()))
    new = after[len(before):]
    assert all(label[name] != 3 for name in new)
    assert len(new) == round(0.05 * (len(bundle.train) - len(before)))  # 5% of what the model still knows
    assert json.loads((out / "record.json").read_text())["forget_set"]["count"] == len(new)
    # the record's forget set is read back from the ledger (not drawn again over the whole dataset)
    assert main(["evaluate", "--checkpoint", str(out / "unlearned.pt"), "--record", str(out / "record.json")]) == 0
    assert "random:0.05" in capsys.readouterr().out


def test_a_request_that_forgets_nothing_new_is_refused(forgot_class_3, tmp_path, capsys):
    assert main(["unlearn", "--checkpoint", str(forgot_class_3 / "unlearned.pt"), "--forget", "class:3",
                 "--method", "ft", "--out", str(tmp_path / "again"), "--quiet"]) == 2
    assert "nothing new to forget" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_a_request_partly_forgotten_before_says_so(forgot_class_3, tmp_path, capsys):
    bundle = load_digits_bundle()
    threes = [n for n, y in zip(bundle.train.names, bundle.train.labels.tolist()) if y == 3][:4]
    fours = [n for n, y in zip(bundle.train.names, bundle.train.labels.tolist()) if y == 4][:6]
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(threes + fours) + "\n")
    out = tmp_path / "partly"
    assert main(["unlearn", "--checkpoint", str(forgot_class_3 / "unlearned.pt"), "--forget", f"indices:{ids}",
                 "--method", "ft", "--set", "epochs=1", "--out", str(out), "--quiet"]) == 0
    assert "4 of the requested samples were forgotten by earlier requests" in capsys.readouterr().err
    assert json.loads((out / "record.json").read_text())["forget_set"]["count"] == 6


@pytest.mark.parametrize("command", [["unlearn", "--forget", "class:3", "--method", "ft"], ["evaluate"],
                                     ["compare", "--methods", "ft"]])
def test_a_checkpoint_refuses_other_data_before_any_work(trained, tmp_path, capsys, command):
    """A model trained on another copy of the data (other images under the same names' count)."""
    blob = torch.load(trained, weights_only=True)
    assert blob["data_identity"]["name"] == "digits" and blob["data_identity"]["train_size"] == 1257
    blob["data_identity"]["names_sha256"] = "0" * 64
    other = tmp_path / "other.pt"
    torch.save(blob, other)
    out = ["--out", str(tmp_path / "o"), "--quiet"] if command[0] != "evaluate" else []
    assert main([command[0], "--checkpoint", str(other), *command[1:], *out]) == 2
    err = capsys.readouterr().err
    assert "trained on other data" in err and "names_sha256" in err
    assert not (tmp_path / "o").exists()


def test_compare_refuses_a_methods_list_that_names_no_method(trained, tmp_path, capsys):
    """`--methods ,` ran Retrain alone and wrote a report of no method (hostile trial, 2026-12-04)."""
    assert main(["compare", "--checkpoint", str(trained), "--methods", ",", "--out", str(tmp_path / "c"),
                 "--quiet"]) == 2
    assert "names no method" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_a_cuda_device_without_one_is_refused_by_name(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["unlearn", "--checkpoint", str(trained), "--device", "cuda", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2
    assert "--device cuda: no CUDA device is available here" in capsys.readouterr().err


def _names(tsv, label):
    rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:]]
    return [name for _, name, row_label in rows if row_label == str(label)]


def test_verify_takes_the_forget_set_by_name(trained, two_requests, tmp_path, capsys):
    """verify --ids read positions only, so the names file a request was made with could not be
    checked (hostile trial, 2026-12-04); names are checked against the request's part of the ledger."""
    u1, u2 = two_requests
    tsv = trained.parent / "sample_ids.tsv"
    cases = {"fives": (_names(tsv, 5), 0), "threes and fives": (_names(tsv, 3) + _names(tsv, 5), 0),
             "fours": (_names(tsv, 4), 1), "one five short": (_names(tsv, 5)[1:], 1)}
    for what, (names, code) in cases.items():
        ids = tmp_path / f"{what}.txt"
        ids.write_text("\n".join(names) + "\n")
        assert main(["verify", str(u2 / "record.json"), str(u2 / "unlearned.pt"), "--ids", str(ids)]) == code, what
        out = capsys.readouterr().out
        assert ("forget names checked" in out) if code == 0 else ("not the forget set of request 2" in out), (what, out)
