"""Invariants of deletion requests, over generated request sequences and command lines (hypothesis):
nothing forgotten is ever trained on again, the record equals what ran, and a command either
refuses before any work or completes."""
import json
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wsscl_fast.cli as cli
from wsscl_fast.cli import main
from wsscl_fast.data import load_digits_bundle, request_scenario, subset_rows

BUNDLE = load_digits_bundle()
NAMES = BUNDLE.train.names

#: one request: a class, a random fraction, or a handful of sample names (some maybe forgotten before)
requests = st.one_of(
    st.integers(0, 9).map(lambda c: ("class", c)),
    st.sampled_from([0.02, 0.05, 0.1, 0.3]).map(lambda f: ("random", f)),
    st.lists(st.integers(0, len(NAMES) - 1), min_size=1, max_size=12, unique=True).map(lambda ids: ("names", ids)),
)


def _spec(request, folder: Path) -> str:
    kind, value = request
    if kind != "names":
        return f"{kind}:{value}"
    path = folder / f"ids{abs(hash(tuple(value)))}.txt"
    path.write_text("\n".join(NAMES[i] for i in value) + "\n")
    return f"indices:{path}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(requests, min_size=1, max_size=5), seed=st.integers(0, 3))
def test_a_request_sequence_never_retains_or_refinds_a_forgotten_sample(tmp_path, sequence, seed):
    """Each request forgets only new samples, retains none forgotten so far, covers the training
    set with them, and leaves every wholly removed class out of TA; or it is refused as nothing new."""
    earlier = torch.empty(0, dtype=torch.int64)
    for request in sequence:
        try:
            scenario = request_scenario(BUNDLE, _spec(request, tmp_path), seed, earlier)
        except ValueError as exc:
            assert "nothing new to forget" in str(exc)
            continue
        forget, retain = scenario.forget_indices, subset_rows(scenario.retain)[1]
        assert not torch.isin(forget, earlier).any()
        assert not torch.isin(retain, torch.cat([earlier, forget])).any()
        assert len(retain) + len(forget) + len(earlier) == len(NAMES)
        earlier = torch.cat([earlier, forget])
        labels = BUNDLE.train.labels
        removed = {c for c in range(10) if torch.isin((labels == c).nonzero().flatten(), earlier).all()}
        ta_labels = set(BUNDLE.test.labels[subset_rows(scenario.test)[1]].tolist()) if removed else set(range(10))
        assert ta_labels == set(range(10)) - removed


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    return out / "model.pt"


FIELDS = {"epochs": st.integers(0, 2), "lr": st.sampled_from([-1.0, 0.0, 0.01]), "l1_alpha": st.sampled_from([0.0, 1e-4]),
          "ga_epochs": st.integers(1, 2), "batch_size": st.sampled_from([0, 32]), "saliency_ratio": st.sampled_from([0.5, 2.0])}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=st.lists(st.tuples(requests, st.sampled_from(["ft", "ga", "l1_sparse", "salun"]),
                                st.sampled_from(sorted(FIELDS)).flatmap(lambda f: st.tuples(st.just(f), FIELDS[f]))),
                      min_size=1, max_size=3))
def test_a_command_refuses_before_work_or_completes_and_records_what_ran(base, tmp_path_factory, chain):
    """A chain of `unlearn` commands with generated forget specs, methods and --set fields: each
    exits 0 with a record of exactly what ran and a retain set that holds nothing forgotten so
    far, or exits 2 having written nothing."""
    folder = tmp_path_factory.mktemp("chain")
    seen = []

    def spy(model, forget, retain, *args, **kwargs):
        seen.append((subset_rows(forget)[1], subset_rows(retain)[1]))
        return real_unlearn(model, forget, retain, *args, **kwargs)
    real_unlearn = cli.unlearn
    checkpoint, forgotten, completed = base, set(), 0
    for k, (request, method, (field, value)) in enumerate(chain):
        out = folder / f"u{k}"
        argv = ["unlearn", "--checkpoint", str(checkpoint), "--forget", _spec(request, folder), "--method", method,
                "--set", f"{field}={value}", "--out", str(out), "--quiet"]
        if field != "epochs" and method != "ga":
            argv += ["--set", "epochs=1"]  # keeps a chain short
        seen.clear()
        with mock.patch.object(cli, "unlearn", spy):
            code = main(argv)
        assert code in (0, 2), argv
        if code == 2:
            assert not out.exists() and not seen, argv  # refused before any work
            continue
        (forget_rows, retain_rows), = seen
        record = json.loads((out / "record.json").read_text())
        ledger = torch.load(out / "unlearned.pt", weights_only=True)["ledger"]["forgotten"]
        position = {name: i for i, name in enumerate(NAMES)}
        assert not forgotten & set(retain_rows.tolist()) and not forgotten & set(forget_rows.tolist())
        forgotten |= set(forget_rows.tolist())
        assert {position[n] for n in ledger} == forgotten and len(ledger) == len(forgotten)
        assert record["method"] == method and record["config"][field] == pytest.approx(value)
        completed += 1
        assert record["forget_set"]["count"] == len(forget_rows) and record["ledger"]["request"] == completed
        checkpoint = out / "unlearned.pt"
