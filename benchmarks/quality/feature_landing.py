"""Where forget samples' features land: for the original, Retrain, and WSS-CL with and
without its contrastive term, on one reported seed of a tuned quality-bench cell.

For each forget sample, with z the L2-normalised input of the final Linear and c_k the
normalised mean of the retain samples of class k: its cosine distance to its own class's
centroid, to the nearest other class's centroid, and whether it is nearer its own class.
Retrain puts forget samples where unseen samples of their class land; a method whose forget
samples land elsewhere over- or under-forgets in feature space, whatever its logits say.

    python -m benchmarks.quality.feature_landing --regime generalise --forget random:0.1 --seed 0
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from benchmarks.quality.cells import REGIMES, cache_tag, cell_name, load_regime, original_and_retrain
from benchmarks.harness import DEFAULT_CIFAR10, REPO, command_line, environment, write_json

from wsscl_fast.api import unlearn
from wsscl_fast.audit import features
from wsscl_fast.config import WSSCLConfig
from wsscl_fast.execution import Runtime


def landing(model, forget, retain, num_classes: int) -> dict:
    """Mean cosine distances of forget features to their own and the nearest other retain class
    centroid, and the % of forget samples nearer their own class."""
    z_r, y_r = features(model, retain, "cpu")
    z_f, y_f = features(model, forget, "cpu")
    z_r, z_f = F.normalize(z_r, dim=1), F.normalize(z_f, dim=1)
    centroids = F.normalize(torch.stack([z_r[y_r == k].mean(0) for k in range(num_classes)]), dim=1)
    distance = 1 - z_f @ centroids.T  # (N_f, classes)
    own = distance.gather(1, y_f[:, None]).squeeze(1)
    other = distance.scatter(1, y_f[:, None], float("inf")).min(dim=1).values
    return dict(own_class=own.mean().item(), nearest_other_class=other.mean().item(),
                nearer_own_class_pct=100.0 * (own < other).float().mean().item())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", choices=sorted(REGIMES), default="generalise")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--forget", default="random:0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    cell = f"quality_{cell_name(args.regime, args.forget)}"
    tuned = json.loads((REPO / "benchmarks" / "results" / f"{cell}.json").read_text())["tuning"]["methods"]["wsscl"]
    measured_with = environment()
    bundle, recipe, configs = load_regime(args)
    original, _, (run_on, _), retrain_model, _ = original_and_retrain(
        args, bundle, recipe, configs, args.seed, cache_tag(args.regime))
    tuned_config = WSSCLConfig.from_dict(tuned["config"])
    models = {"original": original, "retrain": retrain_model}
    for label, config in (("wsscl", tuned_config), ("wsscl [contrastive_weight=0]",
                                                    tuned_config.replace(contrastive_weight=0.0))):
        models[label] = unlearn(original, run_on.forget, run_on.retain, "wsscl", config, holdout=run_on.holdout,
                                seed=args.seed, runtime=Runtime(device="cpu", progress=False)).model
    rows = {label: landing(m, run_on.forget, run_on.retain, bundle.num_classes) for label, m in models.items()}
    for label, row in rows.items():
        print(f"{label:30s} own {row['own_class']:.3f}  other {row['nearest_other_class']:.3f}  "
              f"nearer own {row['nearer_own_class_pct']:.1f}%")
    write_json(dict(environment=measured_with, command=command_line(__spec__.name, argv), cell=cell, seed=args.seed, rows=rows),
               REPO / "benchmarks" / "results" / f"feature_landing_{args.regime}_{cell.rsplit('_', 1)[1]}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
