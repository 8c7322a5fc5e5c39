"""The instrument's cross-fitted KLoM, floor and paired verdicts on synthetic margins."""
import pytest
import torch

from benchmarks.quality.instrument import SPLITS, cross_klom, paired_difference, score_floor

SIZES = {"forget": 30, "retain": 50, "validation": 40}


def _ensemble(models=8, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {s: torch.randn(models, n, generator=g, dtype=torch.float64) + shift for s, n in SIZES.items()}


def test_cross_klom_pairs_each_half_with_the_other_sides_other_half():
    u, o = torch.zeros(4, 3), torch.zeros(4, 3)
    u[:2], o[2:] = 5.0, 5.0  # u's first half equals o's second half, and u's second o's first
    assert torch.equal(cross_klom(u[:2], u[2:], o[:2], o[2:], bins=2), torch.zeros(3, dtype=torch.float64))


def test_the_floor_is_the_oracles_against_themselves_and_a_shift_stands_out_paired():
    oracles = _ensemble(seed=1)
    floor = score_floor(oracles, bins=2, resamples=50, seed=0)
    assert floor["klom"] > 0 and floor["klom_ci"][0] <= floor["klom"] <= floor["klom_ci"][1] + 1e-12
    assert set(floor["splits"]) == set(SPLITS)
    close, far = _ensemble(seed=2), _ensemble(shift=3.0, seed=3)
    assert paired_difference(far, close, oracles, bins=2, resamples=50, seed=0)["verdict"] == "higher"
    assert paired_difference(close, far, oracles, bins=2, resamples=50, seed=0)["verdict"] == "lower"
    same = paired_difference(close, close, oracles, bins=2, resamples=50, seed=0)
    assert same["difference"] == 0 and same["verdict"] == "tied"


def _cell_result(best_ra: float) -> dict:
    """A minimal instrument result: WSS-CL, a lower-KLoM baseline at retain accuracy ``best_ra``, the original."""
    def row(klom, ra):
        return {"klom": klom, "klom_ci": [klom - 0.1, klom + 0.1], "RA": ra,
                "splits": {s: {"mean": klom, "p95": klom} for s in SPLITS}}
    return {"models": 8, "separable": True, "floor_factor": 5.0, "floor": row(0.8, 0.0),
            "oracle_accuracy": {"UA": 100.0, "RA": 85.0, "VA": 78.0},
            "rows": {"original": row(5.0, 86.0), "wsscl": row(5.2, 87.0), "neggrad_plus": row(4.6, best_ra)},
            "wsscl_against": {"original": {"verdict": "higher"}, "neggrad_plus": {"verdict": "higher"}}}


def test_the_summary_names_the_lowest_rows_retain_accuracy_beside_the_oracles():
    from benchmarks.publish.summarize_instrument import cell_sentence

    sentence = cell_sentence("generalise", "classwise", _cell_result(best_ra=29.3))
    assert "the lowest point estimate is neggrad_plus's (4.600, at RA 29.3 against the oracles' 85.0)" in sentence
    assert "above neggrad_plus" in sentence


def test_unlearned_runs_of_two_configs_are_cached_side_by_side(tmp_path, monkeypatch):
    """A variant's runs get their own cache file: running the tuned config after a variant loads
    the tuned run again instead of overwriting (or returning) the variant's."""
    from types import SimpleNamespace

    from benchmarks.quality import instrument
    from wsscl_fast import WSSCLConfig

    calls = []

    def fake_unlearn(model, forget, retain, method, config, **kwargs):
        calls.append(config.finetune_lr)
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.constant_(model.weight, config.finetune_lr)
        return SimpleNamespace(model=model, rte=1.0, info={"work": {"sample_passes": 7}}, timings={})

    monkeypatch.setattr(instrument, "CACHE", tmp_path)
    monkeypatch.setattr(instrument, "unlearn", fake_unlearn)
    monkeypatch.setattr(instrument, "original", lambda cell, seed: (None, 0.0))
    monkeypatch.setattr(instrument, "validation_halves", lambda cell: ([0], [1]))
    monkeypatch.setattr(instrument, "logits_on", lambda model, data: torch.full((2, 3), float(model.weight.detach())))
    cell = SimpleNamespace(key="cell", points={"forget": [0], "validation": [0, 1]},
                           scenario=SimpleNamespace(forget=None, retain=None))
    tuned, variant = WSSCLConfig(finetune_lr=0.01), WSSCLConfig(finetune_lr=0.02)
    first = instrument.unlearned_run(cell, "wsscl", tuned, 0)
    instrument.unlearned_run(cell, "wsscl", variant, 0)
    again = instrument.unlearned_run(cell, "wsscl", tuned, 0)
    assert calls == [0.01, 0.02]  # the tuned run came from the cache the second time
    assert torch.equal(again["logits"]["forget"], first["logits"]["forget"])
    assert again["config"] == tuned.to_dict()
    assert len(list((tmp_path / "unlearned").glob("cell-wsscl-*-s0.pt"))) == 2


def test_the_instrument_reads_another_tunings_configs_and_refuses_one_that_lacks_a_method(tmp_path):
    import json

    from benchmarks.quality.cells import REPO, tuned_configs

    stored = json.loads((REPO / "benchmarks" / "results" / "quality_memorise_random.json").read_text())["configs"]
    stored["wsscl"] = {**stored["wsscl"], "finetune_lr": 0.001}
    path = tmp_path / "tuning_memorise_random_margin.json"
    path.write_text(json.dumps({"configs": stored}))
    configs, source = tuned_configs("memorise", "random:0.1", path)
    assert configs["wsscl"].finetune_lr == 0.001 and source == str(path.resolve())
    assert tuned_configs("memorise", "random:0.1")[0]["wsscl"].finetune_lr != 0.001  # the default file is untouched
    del stored["neggrad_plus"]
    path.write_text(json.dumps({"configs": stored}))
    with pytest.raises(ValueError, match="neggrad_plus"):
        tuned_configs("memorise", "random:0.1", path)
