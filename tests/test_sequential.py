"""Deletion requests in sequence (sequential.py): disjoint requests, cumulative retain sets, and
each method continuing from its own model."""
import json

import pytest

from wsscl_fast.sequential import compare_sequential, cumulative, sequential_requests

from helpers import QUIET


def test_random_requests_are_disjoint_and_the_cumulative_retain_holds_none_of_them(digits):
    requests = sequential_requests(digits, "random:0.02x3", seed=1)
    ids = [set(r.forget_indices.tolist()) for r in requests]
    sizes = [len(s) for s in ids]
    assert sum(sizes) == round(0.06 * len(digits.train)) and max(sizes) - min(sizes) <= 1
    assert not (ids[0] & ids[1] or ids[1] & ids[2] or ids[0] & ids[2])
    so_far = cumulative(digits, requests[:2])
    assert set(so_far.retain.indices).isdisjoint(ids[0] | ids[1]) and set(so_far.retain.indices) & ids[2]
    assert len(so_far.retain) + len(so_far.forget) == len(digits.train)


def test_class_requests_split_the_test_set_by_every_removed_class(digits):
    so_far = cumulative(digits, sequential_requests(digits, "class:3,5"))
    test_labels = {digits.test.labels[i].item() for i in so_far.test.indices}
    gone_labels = {digits.test.labels[i].item() for i in so_far.forgotten_test.indices}
    assert gone_labels == {3, 5} and not test_labels & {3, 5}


@pytest.mark.parametrize("spec", ["random:0.5x3", "random:0.1", "range:1"])
def test_bad_sequential_specs_are_refused(digits, spec):
    with pytest.raises(ValueError, match="sequential spec"):
        sequential_requests(digits, spec)


def test_compare_sequential_keeps_earlier_classes_forgotten(trained_digits_model, digits, tiny_recipe):
    configs = dict(tiny_recipe.method_configs, retrain=tiny_recipe.train.replace(epochs=2))
    configs["wsscl"] = configs["wsscl"].replace(forget_epochs=2, finetune_epochs=1)
    rows = compare_sequential(trained_digits_model, digits, sequential_requests(digits, "class:3,5"), ["wsscl"],
                              configs, runtime=QUIET)
    wsscl = [r for r in rows if r["method"] == "wsscl"]
    assert [r["request"] for r in wsscl] == [1, 2]
    assert wsscl[1]["UA"] > 90 and wsscl[1]["forgotten_class_TA"] < 10  # both classes gone after request 2
    assert wsscl[1]["cumulative_RTE"] == pytest.approx(wsscl[0]["RTE"] + wsscl[1]["RTE"])
    assert all(r["gap"] == 0 and r["test_KL"] == 0 for r in rows if r["method"] == "retrain")
    assert all(r["forget_KL"] > 0 and r["test_KL"] > 0 for r in wsscl)  # an unlearned model is not the Retrain


def test_sequential_rows_record_which_checkpoint_wsscl_returned(trained_digits_model, digits, tiny_recipe):
    configs = dict(tiny_recipe.method_configs, retrain=tiny_recipe.train.replace(epochs=1))
    configs["wsscl"] = configs["wsscl"].replace(forget_epochs=1, finetune_epochs=1, checkpoint_choice="holdout")
    rows = compare_sequential(trained_digits_model, digits, sequential_requests(digits, "random:0.05x2"),
                              ["wsscl"], configs, runtime=QUIET)
    for row in (r for r in rows if r["method"] == "wsscl"):
        choice = row["checkpoint_choice"]
        candidates = [c["at"] for c in choice["candidates"]]
        assert candidates[0] == "given model" and choice["chosen"] in candidates
        assert len(candidates) == (1 if choice["skipped_training"] else 3)  # given, the end of stage 1, of stage 2
    assert all("checkpoint_choice" not in r for r in rows if r["method"] == "retrain")


def test_cli_compare_runs_requests_in_sequence_and_stamps_its_report(tmp_path, capsys):
    from PIL import Image

    from wsscl_fast.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--data", "digits", "--epochs", "2", "--requests", "class:3,5", "--methods", "ft",
                 "--set", "ft.epochs=1", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert [(r["method"], r["request"]) for r in report["rows"]] == [("retrain", 1), ("ft", 1), ("retrain", 2),
                                                                     ("ft", 2)]
    assert report["requests"] == "class:3,5" and report["provenance"]["command"].startswith("wsscl-fast compare")
    assert "| ft | " in (out / "compare.md").read_text() and "after 2: gap / TA / test KL" in (out / "compare.md").read_text()
    with Image.open(out / "compare.png") as image:
        assert json.loads(image.text["Provenance"])["device"] == report["provenance"]["device"]


@pytest.mark.parametrize("extra, message", [(["--requests", "class:"], "sequential spec"),
                                            (["--requests", "class:3,5", "--audit"], "--audit measures one request")])
def test_cli_compare_refuses_bad_requests_before_any_work(tmp_path, capsys, extra, message):
    from wsscl_fast.cli import main

    assert main(["compare", "--data", "digits", "--out", str(tmp_path / "cmp"), "--quiet", *extra]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()
