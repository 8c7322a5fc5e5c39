"""benchmarks/publish/plot_sequence_variants.py: each run against its own Retrain, provenance of every input."""
import json

import pytest
from PIL import Image

from benchmarks.publish.plot_sequence_variants import load_runs, main


def _run(path, ta, retrain_ta, seed):
    rows = []
    for k, (mine, ref) in enumerate(zip(ta, retrain_ta), start=1):
        rows.append(dict(method="retrain", request=k, TA=ref, test_KL=0.0, forget_KL=0.0))
        rows.append(dict(method="wsscl", request=k, TA=mine, test_KL=0.05 * k, forget_KL=0.04 * k))
    path.write_text(json.dumps(dict(command=f"bench --seed {seed}", environment=dict(git_commit=f"c{seed}"),
                                    rows=rows[::-1])))  # out of order on purpose
    return path


def test_runs_of_different_seeds_are_each_read_against_their_own_retrain(tmp_path):
    a = _run(tmp_path / "a.json", [86.0, 85.0], [87.0, 86.5], seed=2)
    b = _run(tmp_path / "b.json", [87.5, 87.5], [87.0, 86.6], seed=3)
    runs, sources = load_runs([f"seed 2={a}", f"seed 3={b}"], "wsscl")
    mine, retrain = runs["seed 2"]
    assert [r["request"] for r in mine] == [1, 2] and [r["TA"] for r in retrain] == [87.0, 86.5]
    assert [r["TA"] for r in runs["seed 3"][1]] == [87.0, 86.6]
    assert [s["commit"] for s in sources] == ["c2", "c3"]
    out = tmp_path / "plot.png"
    assert main(["--method", "wsscl", "--run", f"seed 2={a}", "--run", f"seed 3={b}", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert [i["file"] for i in json.loads(image.text["Provenance"])["inputs"]] == ["a.json", "b.json"]


@pytest.mark.parametrize("spec, message", [("no-label", "LABEL=PATH"), ("x={path}", "has no ft rows")])
def test_bad_runs_are_refused(tmp_path, spec, message):
    path = _run(tmp_path / "a.json", [86.0], [87.0], seed=0)
    with pytest.raises(SystemExit, match=message):
        load_runs([spec.format(path=path)], "ft")
