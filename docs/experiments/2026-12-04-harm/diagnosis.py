"""Where WSS-CL's distance to the oracles comes from in one cell, on the tuning seed only (100:
its original and its Retrain, cached by the quality bench; no seed of the instrument is read).

Against that seed's Retrain, per model and per split (a fixed sample of 1,000 retain images, the
validation scoring half, the forget set): the accuracy, the mean shift of the margin
z_y - logsumexp_{j != y} z_j and its mean |shift| (one Retrain: it includes seed noise, as the
original's row shows), and the retain shift per class. For a class-wise forget also the removed
class's mean logit z_0 against Retrain's, the mean -log p(removed class) on the forget set, and
the mean over the forget set of the probabilities of the remaining classes once the removed one
is taken out (softmax without z_0). Rows: the original, Retrain, WSS-CL with the tuned config and
with each ``FIELD=VALUE`` given, and each ``--baselines`` method with its tuned config.

    python docs/experiments/2026-12-04-harm/diagnosis.py finetune_forget_weight=0
    python docs/experiments/2026-12-04-harm/diagnosis.py --regime memorise --forget random:0.1 \\
        --baselines neggrad_plus,ga finetune_forget_weight=0

(``forget_ascent=removed retain_target=original``, two rows of the class-wise output, are fields
of commit 3b87df4, deleted after their runs; that output was written by this script's first
version, ``classwise_diagnosis.py`` at 480f800, without the accuracy columns.)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import Subset

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from benchmarks.quality.cells import cache_tag, load_regime, original_and_retrain, tuned_configs  # noqa: E402
from benchmarks.harness import DEFAULT_CIFAR10  # noqa: E402
from wsscl_fast.api import unlearn  # noqa: E402
from wsscl_fast.data import dataset_labels  # noqa: E402
from wsscl_fast.execution import Runtime  # noqa: E402
from wsscl_fast.metrics import logits_on, margins  # noqa: E402

TUNING_SEED = 100


def split_logits(model, splits: dict) -> dict:
    return {name: logits_on(model, data) for name, data in splits.items()}


def report(name: str, logits: dict, reference: dict, labels: dict, removed: int | None) -> None:
    """One row: per split the accuracy, the margin shift against Retrain and |shift| (and, for a
    removed class, z_0 - Retrain's z_0)."""
    cells = [f"{name:32s}"]
    shifts = {split: margins(z[None], labels[split])[0] - margins(reference[split][None], labels[split])[0]
              for split, z in logits.items()}
    for split, z in logits.items():
        shift = shifts[split]
        accuracy = 100 * float((z.argmax(dim=1) == labels[split]).float().mean())
        cell = f"{split} acc {accuracy:.1f} {float(shift.mean()):+.2f} |{float(shift.abs().mean()):.2f}|"
        if removed is not None:
            cell += f" z0 {float((z[:, removed] - reference[split][:, removed]).mean()):+.2f}"
        cells.append(cell)
    per_class = [float(shifts["retain"][labels["retain"] == c].mean()) for c in labels["retain"].unique().tolist()]
    line = " | ".join(cells) + " | retain per class " + " ".join(f"{v:+.1f}" for v in per_class)
    if removed is not None:
        forget_nll = float(-torch.log_softmax(logits["forget"], dim=1)[:, removed].mean())
        without_removed = logits["forget"].index_fill(1, torch.tensor([removed]), float("-inf"))
        renormalised = torch.softmax(without_removed, dim=1).mean(dim=0)
        line += (f" | forget -log p{removed} {forget_nll:.2f} | forget p(c | c != {removed}) "
                 + " ".join(f"{float(v):.2f}" for i, v in enumerate(renormalised) if i != removed))
    print(line, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", metavar="FIELD=VALUE",
                        help="a WSS-CL field (str, int or float) changed from the tuned config")
    parser.add_argument("--regime", choices=("generalise", "memorise"), default="generalise")
    parser.add_argument("--forget", default="class:0", help="class:K or random:FRACTION, as the quality bench")
    parser.add_argument("--baselines", default="coun", help="methods run with their tuned configs, comma-separated")
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10), help="CIFAR-10 (the memorising regime)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    removed = int(args.forget.split(":")[1]) if args.forget.startswith("class:") else None
    cell = argparse.Namespace(regime=args.regime, forget=args.forget, data_root=args.data_root)
    bundle, recipe, configs = load_regime(cell)
    original, _, (run_on, scoring), retrain, _ = original_and_retrain(cell, bundle, recipe, configs, TUNING_SEED,
                                                                      cache_tag(args.regime))
    tuned, _ = tuned_configs(args.regime, args.forget)
    rows = torch.randperm(len(run_on.retain), generator=torch.Generator().manual_seed(0))[:1000].tolist()
    splits = {"retain": Subset(run_on.retain, rows), "validation": scoring.test, "forget": run_on.forget}
    labels = {name: dataset_labels(data) for name, data in splits.items()}
    reference = split_logits(retrain, splits)
    report("original", split_logits(original, splits), reference, labels, removed)
    report("retrain", reference, reference, labels, removed)
    runs = [("wsscl", "wsscl", tuned["wsscl"])]
    for variant in args.variants:
        field, value = variant.split("=", 1)
        kind = type(getattr(tuned["wsscl"], field))  # str, int or float fields
        runs.append((f"wsscl {variant}", "wsscl", tuned["wsscl"].replace(**{field: kind(value)})))
    runs += [(method, method, tuned[method]) for method in args.baselines.split(",") if method]
    for name, method, config in runs:
        result = unlearn(original, run_on.forget, run_on.retain, method, config, holdout=run_on.holdout,
                         seed=TUNING_SEED, runtime=Runtime(device="cpu", progress=False))
        report(name, split_logits(result.model, splits), reference, labels, removed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
