"""How far apart two Retrains are in test accuracy: the resolution of the sequence bar.

Issue 33's sequence bar asks WSS-CL's test accuracy to stay within 1 point of *one* Retrain's
after every request. This measures what that bar can resolve on the generalising regime: the
instrument's cached ensembles of the ``random:0.1`` cell (``benchmarks/quality/ensembles.py``:
n oracles, each a Retrain on the same retain split with its own seed, and n originals trained
on everything) are scored on the regime's test split (2,000 images), and every pair is compared:
oracle i against oracle j (a Retrain of another seed, the ideal unlearner) and original i
against oracle j (doing nothing). Nothing is trained here if the ensembles are cached.

    python docs/experiments/2026-12-04-harm/retrain_spread.py --out docs/experiments/2026-12-04-harm/retrain_spread.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from benchmarks.harness import environment  # noqa: E402
from benchmarks.quality.ensembles import load_cell, oracle, original  # noqa: E402
from wsscl_fast.metrics import predict_split  # noqa: E402


def pair_summary(differences: list[float]) -> dict:
    """|a - b| of test accuracy (points) over pairs: mean, max and the share above 1 point."""
    gaps = [abs(d) for d in differences]
    return dict(pairs=len(gaps), mean_abs=sum(gaps) / len(gaps), max_abs=max(gaps),
                share_over_1_point=sum(g > 1.0 for g in gaps) / len(gaps))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    cell = load_cell("generalise", "random:0.1")
    test = cell.bundle.test

    def test_accuracy(model) -> float:
        return predict_split(model, test).accuracy

    oracles = [test_accuracy(oracle(cell, seed)[0]) for seed in range(args.models)]
    originals = [test_accuracy(original(cell, seed)[0]) for seed in range(args.models)]
    retrain_vs_retrain = [a - b for a, b in itertools.combinations(oracles, 2)]
    nothing_vs_retrain = [a - b for i, a in enumerate(originals) for j, b in enumerate(oracles) if i != j]
    payload = dict(environment=environment(), cell=cell.key, test_size=len(test),
                   oracle_test_accuracy=oracles, original_test_accuracy=originals,
                   retrain_vs_retrain=pair_summary(retrain_vs_retrain),
                   original_vs_retrain=pair_summary(nothing_vs_retrain))
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps({k: payload[k] for k in ("retrain_vs_retrain", "original_vs_retrain")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
