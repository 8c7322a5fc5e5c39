"""Why WSS-CL's harm compounds over requests: a trace of what each request starts from and does.

Five random 2% requests on the generalising regime's cached original (seed 0), as
benchmarks/quality/bench_sequential.py runs them, WSS-CL at the cell's tuned config with
``checkpoint_choice`` "last" and "holdout". Per request, before the run: the given model's
holdout accuracy and mean holdout cross-entropy (what ``kl_bound="auto"`` matches the forget
samples to), its error on the new forget samples; after: the mean seen-class KL bound the run
used, the chosen checkpoint, holdout and test accuracy, and the error on the new samples and on
the earlier requests' samples (does a request push what was already forgotten further?).
No Retrain here: bench_sequential measures the distance to one.

    python docs/experiments/2026-12-04-harm/trace.py --out docs/experiments/2026-12-04-harm/trace.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from benchmarks.harness import environment  # noqa: E402
from benchmarks.quality.cells import cache_tag, cached_training, load_regime, tuned_configs  # noqa: E402
from wsscl_fast.api import unlearn  # noqa: E402
from wsscl_fast.execution import Runtime  # noqa: E402
from wsscl_fast.metrics import predict_split  # noqa: E402
from wsscl_fast.methods.wsscl import sample_losses  # noqa: E402
from wsscl_fast.sequential import cumulative, sequential_requests  # noqa: E402


def trace(choice: str, model, bundle, requests, config) -> list[dict]:
    rows, current = [], model
    for k, request in enumerate(requests, start=1):
        so_far = cumulative(bundle, requests[:k])
        holdout_nll, _ = sample_losses(current, bundle.validation, torch.device("cpu"))
        before = dict(holdout_accuracy=predict_split(current, bundle.validation).accuracy,
                      holdout_mean_cross_entropy=float(holdout_nll.mean()),
                      new_forget_error=100 - predict_split(current, request.forget).accuracy)
        result = unlearn(current, request.forget, so_far.retain, "wsscl", config.replace(checkpoint_choice=choice),
                         holdout=bundle.validation, seed=0, runtime=Runtime(progress=False))
        current = result.model
        chosen = result.info.get("checkpoint_choice")
        after = dict(kl_bound_seen_class_mean=result.info.get("kl_bound_seen_class_mean"),  # None: not trained
                     chosen=chosen["chosen"] if isinstance(chosen, dict) else "last",
                     skipped_training=isinstance(chosen, dict) and chosen["skipped_training"],
                     holdout_accuracy=predict_split(current, bundle.validation).accuracy,
                     test_accuracy=predict_split(current, bundle.test).accuracy,
                     new_forget_error=100 - predict_split(current, request.forget).accuracy,
                     work=result.info["work"]["sample_passes"])
        if k > 1:
            earlier = cumulative(bundle, requests[:k - 1])
            after["earlier_forget_error"] = 100 - predict_split(current, earlier.forget).accuracy
        rows.append(dict(choice=choice, request=k, before=before, after=after))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle, recipe, _ = load_regime(argparse.Namespace(regime="generalise"))
    config = tuned_configs("generalise", "random:0.1")[0]["wsscl"]
    model, _ = cached_training(f"original-{cache_tag('generalise')}-s0", lambda: recipe.build_model(bundle),
                               bundle.train, recipe.train, 0, "original seed 0")
    requests = sequential_requests(bundle, "random:0.02x5", seed=0)
    rows = [row for choice in ("last", "holdout") for row in trace(choice, model, bundle, requests, config)]
    Path(args.out).write_text(json.dumps(dict(environment=environment(), config=config.to_dict(), rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
