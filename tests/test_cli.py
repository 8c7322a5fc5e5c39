"""The command line, in process: train, unlearn, evaluate, compare, --help and bad input."""
import json
import pickle
import re

import pytest
import torch

from wsscl_fast.cli import main
from wsscl_fast.data import load_digits_bundle


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert main(["train", "--data", "digits", "--epochs", "3", "--out", str(out), "--quiet"]) == 0
    return out / "model.pt"


def test_help_for_every_command(capsys):
    for command in ("train", "unlearn", "evaluate", "compare", "demo", "verify"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert f"example:\n  wsscl-fast {command}" in out, command
        if command != "verify":
            assert "--device" in out and "--seed" in out
        assert ("--out" in out) == (command not in ("verify", "evaluate"))  # evaluate prints, writes nothing
        if command in ("unlearn", "compare"):
            assert "finetune_epochs" in out and "ga_epochs" in out  # --set lists the fields


def test_train_writes_a_weights_only_checkpoint(checkpoint):
    table = (checkpoint.parent / "sample_ids.tsv").read_text().splitlines()
    # digits: 1,257 training images (10% of the 1,797 are validation, 20% test)
    assert table[0] == "position\tname\tlabel" and table[1].startswith("0\tdigits:") and len(table) == 1 + 1257
    blob = torch.load(checkpoint, weights_only=True)
    assert blob["arch"] == "small_cnn" and blob["data"] == "digits" and "state_dict" in blob


def test_unlearn_and_evaluate(checkpoint, tmp_path, capsys):
    before = checkpoint.read_bytes()
    out = tmp_path / "unlearned"
    code = main(["unlearn", "--checkpoint", str(checkpoint), "--forget", "class:1", "--method", "wsscl",
                 "--set", "finetune_epochs=1", "--set", "forget_epochs=2", "--out", str(out), "--quiet"])
    assert code == 0
    assert checkpoint.read_bytes() == before, "the input checkpoint must never be overwritten"
    summary = json.loads((out / "unlearn.json").read_text())
    assert summary["config"]["finetune_epochs"] == 1 and summary["metrics"]["UA"] >= 0
    assert main(["evaluate", "--checkpoint", str(out / "unlearned.pt"), "--forget", "class:1"]) == 0
    assert "UA=" in capsys.readouterr().out
    record = json.loads((out / "record.json").read_text())
    assert record["method"] == "wsscl" and record["forget_set"]["scenario"] == "class:1"
    assert record["original_weights_sha256"] != record["unlearned_weights_sha256"]


def test_the_record_and_the_output_say_which_model_the_checkpoint_choice_returned(checkpoint, tmp_path, capsys):
    out = tmp_path / "chosen"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", "random:0.1", "--method", "wsscl",
                 "--set", "checkpoint_choice=holdout", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "record.json").read_text())
    choice = record["checkpoint_choice"]
    assert choice["chosen"] in [c["at"] for c in choice["candidates"]]
    printed = "note: checkpoint_choice returned the given model unchanged" in capsys.readouterr().out
    assert printed == (choice["chosen"] == "given model")
    if choice["chosen"] == "given model":
        assert record["original_weights_sha256"] == record["unlearned_weights_sha256"]
    plain = tmp_path / "last"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", "class:1", "--method", "wsscl",
                 "--set", "finetune_epochs=1", "--out", str(plain), "--quiet"]) == 0
    assert "checkpoint_choice" not in json.loads((plain / "record.json").read_text())  # the default: the last model


@pytest.fixture(scope="module")
def retrain_random(checkpoint, tmp_path_factory):
    """A Retrain of `checkpoint` without random:0.1 (seed 0), one epoch."""
    out = tmp_path_factory.mktemp("retrain")
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", "random:0.1", "--method", "retrain",
                 "--set", "epochs=1", "--out", str(out), "--quiet"]) == 0
    return out / "unlearned.pt"


def test_record_identifies_the_unlearned_model(checkpoint, retrain_random, tmp_path, capsys):
    out = tmp_path / "unlearned"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", "random:0.1", "--method", "ft",
                 "--set", "epochs=1", "--retrain", str(retrain_random), "--out", str(out), "--quiet"]) == 0
    record_path, model_path = out / "record.json", out / "unlearned.pt"
    record = json.loads(record_path.read_text())
    forget_ids = record["forget_set"]
    assert forget_ids["count"] > 0 and len(forget_ids["ids_sha256"]) == 64 and "ids" not in forget_ids
    assert record["retrain"]["avg_gap"] >= 0 and record["software"]["torch"] == torch.__version__
    capsys.readouterr()
    assert main(["verify", str(record_path), str(model_path)]) == 0
    assert "is the model described" in capsys.readouterr().out
    assert main(["verify", str(record_path), str(checkpoint)]) == 1
    assert "ORIGINAL" in capsys.readouterr().out
    blob = torch.load(model_path, weights_only=True)
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first].view(-1)[0] += 1e-6
    torch.save(blob, tmp_path / "tampered.pt")
    assert main(["verify", str(record_path), str(tmp_path / "tampered.pt")]) == 1
    assert "does not match" in capsys.readouterr().out
    assert main(["verify", str(model_path), str(model_path)]) == 3  # a model is not a record: unreadable input


def test_compare_writes_a_report(checkpoint, tmp_path, capsys):
    code = main(["compare", "--checkpoint", str(checkpoint), "--methods", "ft,wsscl", "--forget", "random:0.1",
                 "--set", "ft.epochs=1", "--set", "wsscl.finetune_epochs=1", "--set", "retrain.epochs=2",
                 "--out", str(tmp_path), "--quiet"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| retrain |" in table and "| wsscl |" in table and "Avg. Gap" in table
    report = json.loads((tmp_path / "compare.json").read_text())
    assert [r["method"] for r in report["rows"]] == ["original", "retrain", "ft", "wsscl"]
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_bad_input_gives_one_line_errors(checkpoint, tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(object()))
    assert main(["evaluate", "--checkpoint", str(evil)]) == 2
    assert "not a loadable weights-only checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", "class:42", "--out", str(tmp_path)]) == 2
    assert "forget class 42 has no samples" in capsys.readouterr().err
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--set", "lamda=1", "--out", str(tmp_path)]) == 2
    assert "has no field 'lamda'" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", "fashion-mnist",
                 "--data-root", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_mismatched_checkpoint_is_refused(checkpoint, tmp_path, capsys):
    blob = torch.load(checkpoint, weights_only=True)
    blob["state_dict"]["head.weight"] = torch.zeros(3, 128)
    torch.save(blob, tmp_path / "bad.pt")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "bad.pt")]) == 2
    assert "does not match a small_cnn for digits" in capsys.readouterr().err


def test_hostile_forget_lists_and_unwritable_output(checkpoint, tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("3\n7\n3\n")
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", f"indices:{ids}", "--out", str(tmp_path)]) == 2
    assert "duplicates: [3]" in capsys.readouterr().err
    ids.write_text("3\n100000\n")
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", f"indices:{ids}", "--out", str(tmp_path)]) == 2
    assert "out of range" in capsys.readouterr().err
    ids.write_text("3\nseven\n")
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", f"indices:{ids}", "--out", str(tmp_path)]) == 2
    assert "line 2: expected an integer position or a sample name of the dataset, got 'seven'" in capsys.readouterr().err
    # /sys refuses new entries even to root; the check runs before any work is done
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--out", "/sys/wsscl_fast_out", "--quiet"]) == 2
    assert "output directory /sys/wsscl_fast_out is not writable" in capsys.readouterr().err


def test_resume_without_a_state_is_refused(checkpoint, tmp_path, capsys):
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--resume", "--out", str(tmp_path), "--quiet"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


# ----------------------------------------------------------------------------- no silent wrong result, no lost file
@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs: expected a positive integer, got 0"),
    (["train", "--train-size", "-5"], "--train-size: expected a positive integer, got -5"),
    (["train", "--test-size", "0"], "--test-size: expected a positive integer, got 0"),
    (["compare", "--epochs", "two"], "--epochs: expected a positive integer, got 'two'"),
])
def test_counts_must_be_positive(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_existing_outputs_need_force(checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["unlearn", "--checkpoint", str(checkpoint), "--method", "ft", "--set", "epochs=1", "--out", str(out),
            "--quiet"]
    assert main(args) == 0
    first = (out / "unlearned.pt").read_bytes(), (out / "record.json").read_text()
    capsys.readouterr()
    assert main([*args[:-1], "--seed", "1", "--quiet"]) == 2
    assert "already holds unlearned.pt, unlearn.json, record.json" in capsys.readouterr().err
    assert ((out / "unlearned.pt").read_bytes(), (out / "record.json").read_text()) == first
    assert main([*args, "--seed", "1", "--force"]) == 0
    assert (out / "unlearned.pt").read_bytes() != first[0]
    train_out = checkpoint.parent
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(train_out), "--quiet"]) == 2
    assert "already holds model.pt" in capsys.readouterr().err


def test_failed_command_leaves_no_new_empty_folder_and_bad_retrain_fails_first(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "never"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--retrain", str(bad), "--out", str(out), "--quiet"]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert not out.exists()  # failed before any work: no unlearned.pt without a record, no empty folder


def test_evaluate_reuses_the_scenario_of_the_unlearning_run(checkpoint, tmp_path, capsys):
    out = tmp_path / "c1"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", "class:1", "--method", "ft", "--set",
                 "epochs=1", "--seed", "3", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "unlearned.pt"), "--quiet"]) == 0
    from_checkpoint = capsys.readouterr().out
    assert "forget set: class:1, seed 3" in from_checkpoint
    assert main(["evaluate", "--checkpoint", str(out / "unlearned.pt"), "--record", str(out / "record.json")]) == 0
    assert capsys.readouterr().out == from_checkpoint
    assert main(["evaluate", "--checkpoint", str(out / "unlearned.pt"), "--forget", "random:0.1", "--seed", "0"]) == 0
    assert "forget set: random:0.1, seed 0" in capsys.readouterr().out


def test_evaluate_reads_a_records_forget_set_from_the_ledger_not_from_its_ids_file(checkpoint, tmp_path, capsys,
                                                                                    monkeypatch):
    """A record's ``indices:FILE`` is never read again (not from the current directory, not after
    the file changed): the request's samples come from the model's ledger, checked against the
    record's digest; a ledger that no longer gives them is refused."""
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(str(i) for i in range(0, 60, 3)))
    out = tmp_path / "run"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", f"indices:{ids}", "--method", "ft", "--set",
                 "epochs=1", "--out", str(out), "--quiet"]) == 0
    evaluate = ["evaluate", "--checkpoint", str(out / "unlearned.pt"), "--record", str(out / "record.json")]
    capsys.readouterr()
    assert main(evaluate) == 0
    first = capsys.readouterr().out
    ids.write_text("\n".join(str(i) for i in range(1, 60, 3)))
    monkeypatch.chdir(tmp_path / "run")
    assert main(evaluate) == 0 and capsys.readouterr().out == first
    blob = torch.load(out / "unlearned.pt", weights_only=True)
    forgotten = blob["ledger"]["forgotten"]
    other = next(name for name in load_digits_bundle().train.names if name not in forgotten)
    blob["ledger"]["forgotten"] = forgotten[1:] + [other]  # another chain's ledger: one sample differs
    torch.save(blob, out / "edited.pt")
    assert main(["evaluate", "--checkpoint", str(out / "edited.pt"), "--record", str(out / "record.json")]) == 2
    assert "no longer gives the forget set" in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("forget_batch_size=0", "WSSCLConfig.forget_batch_size must be an integer >= 1, got 0"),
    ("finetune_lr=-1", "WSSCLConfig.finetune_lr must be > 0, got -1.0"),
    ("finetune_lr=abc", "--set 'finetune_lr=abc': finetune_lr expects float, got 'abc'"),
    ("forget_epochs=0", None),  # with finetune_epochs=0 below: nothing would be unlearned
])
def test_wsscl_settings_are_checked_before_the_run(checkpoint, tmp_path, capsys, override, message):
    extra = ["--set", "finetune_epochs=0"] if message is None else []
    out = tmp_path / "o"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--set", override, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (message or "both 0, so nothing would be unlearned") in err, err
    assert not out.exists()


@pytest.mark.parametrize("method, override, message", [
    ("ga", "ga_epochs=0", "BaselineConfig.ga_epochs must be an integer >= 1, got 0"),
    ("ft", "epochs=1.5", "epochs expects int"),
    ("ga", "wsscl.finetune_epochs=1", "configures wsscl, which this run does not use (ga)"),
])
def test_baseline_settings_and_foreign_overrides_are_refused(checkpoint, tmp_path, capsys, method, override, message):
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--method", method, "--set", override,
                 "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("chosen", ["torch", "cpp"])
def test_record_names_the_backend_that_ran_each_op(checkpoint, tmp_path, monkeypatch, chosen):
    monkeypatch.setenv("WSSCL_BACKEND", chosen)
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--method", "salun", "--set", "epochs=1",
                 "--out", str(tmp_path), "--quiet"]) == 0
    used = json.loads((tmp_path / "record.json").read_text())["backends"]
    assert used == {"saliency": [chosen], "masked_sgd_step": [chosen]}


@pytest.mark.parametrize("flag, env, message", [
    ([], "nonsense", "backend must be one of .* got 'nonsense' \\(from WSSCL_BACKEND\\)"),
    (["--backend", "triton"], None, "backend 'triton' is unavailable: triton needs CUDA tensors"),
])
def test_a_forced_backend_that_cannot_run_is_refused_before_any_work(checkpoint, tmp_path, capsys, monkeypatch,
                                                                       flag, env, message):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if env:
        monkeypatch.setenv("WSSCL_BACKEND", env)
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--method", "ft", "--set", "epochs=1", *flag,
                 "--out", str(tmp_path / "u"), "--quiet"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "u").exists()


def test_record_of_a_method_without_fused_ops_claims_no_backend(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("WSSCL_BACKEND", "cpp")
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--method", "ft", "--set", "epochs=1",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert json.loads((tmp_path / "record.json").read_text())["backends"] == {}


def test_verify_checks_ids_signature_and_unchanged_weights(checkpoint, tmp_path, capsys):
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    out = tmp_path / "run"
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(str(i) for i in range(0, 40, 3)))
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", f"indices:{ids}", "--method", "ft",
                 "--set", "epochs=1", "--key-file", str(key), "--out", str(out), "--quiet"]) == 0
    record, model = str(out / "record.json"), str(out / "unlearned.pt")
    capsys.readouterr()
    assert main(["verify", record, model, "--ids", str(ids), "--key-file", str(key)]) == 0
    checked = capsys.readouterr().out
    assert "signature and forget ids checked" in checked and "NOT checked" not in checked
    assert main(["verify", record, model]) == 0
    assert "signature NOT checked" in capsys.readouterr().out
    other = tmp_path / "other.txt"
    other.write_text("1\n2\n")
    assert main(["verify", record, model, "--ids", str(other)]) == 1
    assert "not the forget set" in capsys.readouterr().out
    wrong = tmp_path / "wrong"
    wrong.write_text("guess")
    assert main(["verify", record, model, "--key-file", str(wrong)]) == 1
    edited = json.loads((out / "record.json").read_text())
    edited["metrics"]["UA"] = 100.0
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    assert main(["verify", str(tmp_path / "edited.json"), model, "--key-file", str(key)]) == 1
    assert "HMAC mismatch" in capsys.readouterr().out
    stripped = {k: v for k, v in edited.items() if k != "hmac_sha256"}  # signature removed: the ledger notices
    (tmp_path / "stripped.json").write_text(json.dumps(stripped))
    assert main(["verify", str(tmp_path / "stripped.json"), model]) == 1
    assert "not the last record of the model's ledger" in capsys.readouterr().out
    unsigned = tmp_path / "unsigned"
    assert main(["unlearn", "--checkpoint", str(checkpoint), "--forget", f"indices:{ids}", "--method", "ft",
                 "--set", "epochs=1", "--out", str(unsigned), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["verify", str(unsigned / "record.json"), str(unsigned / "unlearned.pt")]) == 0
    assert "UNSIGNED" in capsys.readouterr().out
    unchanged = dict(edited, unlearned_weights_sha256=edited["original_weights_sha256"])
    (tmp_path / "unchanged.json").write_text(json.dumps(unchanged))
    assert main(["verify", str(tmp_path / "unchanged.json"), str(checkpoint)]) == 1
    assert "changed no weight" in capsys.readouterr().out


@pytest.mark.parametrize("option", [["--train-size", "100"], ["--test-size", "50"], ["--validation-size", "20"]])
def test_digits_refuses_split_sizes_instead_of_ignoring_them(tmp_path, capsys, option):
    assert main(["train", "--data", "digits", "--epochs", "1", *option, "--out", str(tmp_path / "t"), "--quiet"]) == 2
    assert "digits has a fixed split" in capsys.readouterr().err
    assert not (tmp_path / "t" / "model.pt").exists()


def test_a_retrain_that_saw_the_forget_set_is_refused(checkpoint, retrain_random, tmp_path, capsys):
    def refused(retrain, forget="random:0.1", seed="0"):
        code = main(["unlearn", "--checkpoint", str(checkpoint), "--forget", forget, "--seed", seed, "--method", "ft",
                     "--set", "epochs=1", "--retrain", str(retrain), "--out", str(tmp_path / "u"), "--quiet"])
        return code == 2 and not (tmp_path / "u" / "unlearned.pt").exists() and capsys.readouterr().err
    assert "holds the original model's weights" in refused(checkpoint)
    other = tmp_path / "other"
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(other), "--quiet"]) == 0
    assert "trained on every sample" in refused(other / "model.pt")
    other_split = tmp_path / "other_split"  # seed 1 splits digits differently: other training samples
    assert main(["train", "--data", "digits", "--epochs", "1", "--seed", "1", "--out", str(other_split), "--quiet"]) == 0
    assert "trained on other data" in refused(other_split / "model.pt")
    assert "so it trained on" in refused(retrain_random, seed="1")  # another random forget set
    assert "so it trained on" in refused(retrain_random, forget="class:3")


def test_unreadable_inputs_get_one_line_errors_and_verify_its_own_exit_code(checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert main(["unlearn", "--checkpoint", str(empty), "--out", str(tmp_path / "u")]) == 2
    assert "is empty (0 bytes)" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    assert main(["unlearn", "--checkpoint", str(garbage), "--out", str(tmp_path / "u")]) == 2
    assert "not a loadable weights-only checkpoint" in capsys.readouterr().err
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"unlearned_weights_sha256": "ab", "original_weights_sha256": "cd"}))
    for model in (empty, tmp_path / "missing.pt"):
        assert main(["verify", str(record), str(model)]) == 3
        err = capsys.readouterr().err
        assert err.startswith("wsscl-fast verify: unreadable input:") and err.count("\n") == 1
    assert main(["verify", str(empty), str(checkpoint)]) == 3


def test_compare_trains_retrain_with_the_checkpoints_recipe(checkpoint, tmp_path):
    from wsscl_fast.checkpoint import load_checkpoint
    from wsscl_fast.recipes import checkpoint_recipe
    blob = load_checkpoint(str(checkpoint))
    recipe = checkpoint_recipe(load_digits_bundle(), blob)
    assert blob["train_config"]["epochs"] == 3  # the fixture trains 3 epochs; the digits default is 20
    assert recipe.train.epochs == 3 and recipe.method_configs["retrain"].epochs == 3


def test_a_torchvision_state_dict_is_unlearned_by_architecture_name(tmp_path, monkeypatch, capsys):
    """The user's own model: a bare torchvision ResNet-18 state_dict plus --arch."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image
    from torchvision.models import resnet18

    monkeypatch.setenv("WSSCL_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        with zipfile.ZipFile(tmp_path / f"{split}.zip", "w") as zf:
            for name in ("cat", "dog"):
                for i in range(count):
                    buffer = io.BytesIO()
                    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
                    zf.writestr(f"{name}/{i}.png", buffer.getvalue())
    torch.save(resnet18(num_classes=2).state_dict(), tmp_path / "mine.pt")
    common = ["--data", "cifar10", "--data-root", str(tmp_path), "--checkpoint", str(tmp_path / "mine.pt")]
    assert main(["unlearn", *common, "--method", "ft", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "bare state_dict; name its architecture with --arch" in capsys.readouterr().err
    assert main(["unlearn", *common, "--arch", "torchvision:resnet18", "--method", "ft", "--set", "epochs=1",
                 "--set", "batch_size=8", "--backend", "torch", "--forget", "random:0.25", "--out",
                 str(tmp_path / "o"), "--quiet"]) == 0
    assert torch.load(tmp_path / "o" / "unlearned.pt", weights_only=True)["arch"] == "torchvision:resnet18"
    assert main(["unlearn", "--checkpoint", str(tmp_path / "mine.pt"), "--arch", "torchvision:resnet18",
                 "--out", str(tmp_path / "p")]) == 2
    assert "takes 3-channel images; this dataset has 1 channel" in capsys.readouterr().err


def test_an_interrupted_runs_state_is_not_discarded_by_another_run(checkpoint, tmp_path, capsys):
    (tmp_path / "run_state.pt").write_bytes(b"state of a stopped run")
    args = ["unlearn", "--checkpoint", str(checkpoint), "--method", "ft", "--set", "epochs=1", "--out", str(tmp_path),
            "--quiet"]
    assert main(args) == 2
    assert "run_state.pt, the checkpoint of an interrupted run" in capsys.readouterr().err
    assert (tmp_path / "run_state.pt").read_bytes() == b"state of a stopped run"
    assert main([*args, "--force"]) == 0


def test_a_deletion_stays_deleted_across_requests(tmp_path, capsys):
    """Four commands: class 3, then class 5 with FT (which alone would relearn 3s from
    a retain set that still held them); class 3 must stay forgotten."""
    base, u1, u2 = tmp_path / "b", tmp_path / "u1", tmp_path / "u2"
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(base), "--quiet"]) == 0
    assert main(["unlearn", "--checkpoint", str(base / "model.pt"), "--forget", "class:3", "--method", "wsscl",
                 "--out", str(u1), "--quiet"]) == 0
    assert main(["unlearn", "--checkpoint", str(u1 / "unlearned.pt"), "--forget", "class:5", "--method", "ft",
                 "--out", str(u2), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(u2 / "unlearned.pt"), "--forget", "class:3"]) == 0
    metrics = dict(item.split("=") for item in capsys.readouterr().out.split("\n")[1].split())
    assert float(metrics["UA"]) == 100.0, metrics  # forgotten_class_TA: classes 3 and 5, both removed by now
    from torch.utils.data import Subset

    from wsscl_fast.checkpoint import load_checkpoint
    from wsscl_fast.metrics import predict_split
    from wsscl_fast.recipes import model_from_checkpoint
    bundle = load_digits_bundle()
    model = model_from_checkpoint(load_checkpoint(str(u2 / "unlearned.pt")), bundle, str(u2 / "unlearned.pt"))
    threes = Subset(bundle.test, (bundle.test.labels == 3).nonzero().flatten().tolist())
    assert predict_split(model, threes).accuracy == 0.0
    ledger = torch.load(u2 / "unlearned.pt", weights_only=True)["ledger"]
    digits_3_and_5 = {int(n.split(":")[1]) for n in ledger["forgotten"]}
    assert len(ledger["records"]) == 2 and len(digits_3_and_5) == len(ledger["forgotten"])
    first, second = (json.loads((u / "record.json").read_text())["ledger"] for u in (u1, u2))
    assert first["previous_record_sha256"] is None and first["request"] == 1
    assert second["previous_record_sha256"] == ledger["records"][0] and second["request"] == 2
    assert second["forgotten_count"] == len(ledger["forgotten"])
    assert main(["evaluate", "--checkpoint", str(u2 / "unlearned.pt")]) == 0
    out = capsys.readouterr().out
    assert f"every sample of the checkpoint's ledger ({len(ledger['forgotten'])} samples from 2 requests)" in out
    assert main(["verify", str(u2 / "record.json"), str(u2 / "unlearned.pt")]) == 0
    assert "request 2 of its ledger, every earlier record (1) read and linked" in capsys.readouterr().out
    edited = json.loads((u2 / "record.json").read_text())
    edited["metrics"]["UA"] = 0.0  # an unsigned record edited after the fact: the ledger's digest catches it
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    assert main(["verify", str(tmp_path / "edited.json"), str(u2 / "unlearned.pt")]) == 1
    assert "not the last record of the model's ledger" in capsys.readouterr().out
