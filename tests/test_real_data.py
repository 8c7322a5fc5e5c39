"""Real CIFAR-10 (../shared/data/cifar10) through the whole pipeline on the CPU: zip decoding and
the uint8 cache, training, Retrain, FT / RL / SalUn / WSS-CL, the report and the timing and
throughput sections of benchmarks/kernels/bench_unlearn.py (its --smoke mode, a tiny CNN)."""
import json
import math

import pytest

pytestmark = [pytest.mark.real_data, pytest.mark.slow]


def test_bench_unlearn_smoke_on_real_cifar10(cifar10_root, tmp_path, monkeypatch):
    from benchmarks.kernels import bench_unlearn

    monkeypatch.setenv("WSSCL_CACHE", str(tmp_path / "cache"))
    args = ["--smoke", "--data-root", str(cifar10_root), "--train-size", "2000", "--test-size", "500",
            "--out", str(tmp_path), "--name", "smoke"]
    assert bench_unlearn.main(args) == 0
    assert list((tmp_path / "cache").glob("*.pt")), "the decoded uint8 cache was not written"
    report = json.loads((tmp_path / "smoke.json").read_text())
    methods = [row["method"] for row in report["rows"]]
    assert methods == ["original", "retrain", "ft", "rl", "salun", "wsscl"]
    for row in report["rows"]:
        assert all(math.isfinite(row[k]) and 0 <= row[k] <= 100 for k in ("UA", "RA", "TA", "MIA"))
    assert report["wsscl_reference_vs_fast"][0]["reference_s"] > 0
    assert set(report["throughput"]["images_per_s"]) >= {"eager fp32", "bf16 autocast"}
    assert (tmp_path / "smoke.md").is_file() and (tmp_path / "smoke.png").is_file()
