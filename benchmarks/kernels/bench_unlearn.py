"""End to end on one GPU: ResNet-18 on CIFAR-10, Retrain, FT / RL / SalUn / WSS-CL, quality and speed.

In one run it
  1. trains the original ResNet-18 (CIFAR stem) with the one-cycle recipe (``--epochs``) on the
     fast path and reports its test accuracy (target >= 93%);
  2. runs Retrain with the same recipe on the retain set, then FT, RL, SalUn and WSS-CL, for each
     seed (``--forget random:0.1``, or ``class:0`` for class-wise forgetting);
  3. writes the table of UA, RA, TA, MIA-efficacy, Avg. Gap and RTE (JSON, Markdown, PNG);
  4. times WSS-CL on the reference path (DataLoader, fp32 eager, torch ops and optimizers) and on
     the fast path (on-device data, bf16 autocast, fused kernels) with the same config, and
     reports the ratio;
  5. measures training-step throughput (images/s, batch 256) of plain eager fp32 against the
     fast-path variants (bf16 autocast, channels-last, torch.compile).

    python -m benchmarks.kernels.bench_unlearn                               # GPU, 10% random, seed 0
    python -m benchmarks.kernels.bench_unlearn --forget class:0 --seeds 0 1 2
    python -m benchmarks.kernels.bench_unlearn --smoke                       # CPU: tiny subset and CNN, seconds

``--smoke`` runs every step on a few hundred images with a width-8 CNN; it checks the script,
not the targets.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from benchmarks.harness import (DEFAULT_CIFAR10, REPO, environment, print_verdict, provenance, synchronize,
                                wsscl_vs_best_baseline)

from wsscl_fast import Execution, Runtime, compare, unlearn
from wsscl_fast.data import DEFAULT_VALIDATION_SIZE, load_cifar10_bundle, make_scenario
from wsscl_fast.metrics import predict_split
from wsscl_fast.recipes import apply_overrides, recipe_for
from wsscl_fast.report import write_report
from wsscl_fast.training import train_model


def step_throughput(build_model, execution: Execution, device: torch.device, batch: int, steps: int) -> float:
    """Images/s of full training steps (forward, backward, SGD) on one on-device batch."""
    model = execution.prepare_model(build_model().to(device))
    net = execution.module_to_call(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with execution.autocast_context(device):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(max(3, steps // 5)):  # warm-up (and compilation)
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def throughput_table(build_model, device: torch.device, batch: int, steps: int) -> dict:
    variants = {"eager fp32": Execution.reference(), "bf16 autocast": Execution.fast(),
                "bf16 + channels_last": Execution.fast(channels_last=True)}
    if device.type == "cuda":
        variants["bf16 + compile"] = Execution.fast(compile=True)
        variants["bf16 + channels_last + compile"] = Execution.fast(channels_last=True, compile=True)
    images_per_s = {name: step_throughput(build_model, how, device, batch, steps) for name, how in variants.items()}
    for name, value in images_per_s.items():
        print(f"  step throughput {name:32s} {value:10.0f} img/s")
    return dict(batch=batch, images_per_s=images_per_s,
                best=max(images_per_s, key=images_per_s.get),
                best_over_eager=max(images_per_s.values()) / images_per_s["eager fp32"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--forget", default="random:0.1", help="random:0.1 or class:0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of the original and Retrain")
    parser.add_argument("--methods", default="ft,rl,salun,wsscl")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE")
    parser.add_argument("--channels-last", action="store_true", help="fast path with channels-last")
    parser.add_argument("--compile", action="store_true", help="fast path with torch.compile")
    parser.add_argument("--smoke", action="store_true", help="CPU check of the script: tiny subset and model")
    parser.add_argument("--train-size", type=int, default=None, help="seeded training subset (smoke: 600)")
    parser.add_argument("--test-size", type=int, default=None, help="seeded test subset (smoke: 200)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--name", default=None, help="output name (default: unlearn_gpu_<scenario> / unlearn_smoke)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type == "cpu" and not args.smoke:
        print("bench_unlearn: no GPU here; the full run trains ResNet-18 on CIFAR-10 twice. "
              "Use --smoke for the CPU check of the script.", file=sys.stderr)
        return 2
    small = dict(train_size=600, test_size=200) if args.smoke else dict(train_size=None, test_size=None)
    bundle = load_cifar10_bundle(args.data_root, seed=0, train_size=args.train_size or small["train_size"],
                                 test_size=args.test_size or small["test_size"],
                                 validation_size=100 if args.smoke else DEFAULT_VALIDATION_SIZE)
    recipe = recipe_for(bundle, arch="small_cnn" if args.smoke else "resnet18", epochs=1 if args.smoke else args.epochs,
                        width=8 if args.smoke else None)
    smoke_epochs = ["ft.epochs=1", "rl.epochs=1", "salun.epochs=1", "wsscl.forget_epochs=1", "wsscl.finetune_epochs=1"]
    configs = apply_overrides({**recipe.method_configs, "retrain": recipe.train},
                              (smoke_epochs if args.smoke else []) + args.set)
    fast = Execution.fast(channels_last=args.channels_last, compile=args.compile)
    methods = [m for m in args.methods.split(",") if m]
    name = args.name or ("unlearn_smoke" if args.smoke else f"unlearn_gpu_{args.forget.split(':')[0]}")
    print(f"{environment(device)['device']}: {bundle.name} {len(bundle.train)} train / {len(bundle.test)} test, "
          f"{recipe.arch}, {recipe.train.epochs} epochs, forgetting {args.forget}, seeds {args.seeds}")

    rows, originals, wsscl_paths = [], [], []
    for seed in args.seeds:
        torch.manual_seed(seed)
        synchronize(device)
        start = time.perf_counter()
        original = train_model(recipe.build_model(bundle), bundle.train, configs["retrain"], device, seed=seed,
                               desc=f"original seed {seed}", execution=fast)
        synchronize(device)
        originals.append(dict(seed=seed, train_seconds=time.perf_counter() - start,
                              test_accuracy=predict_split(original, bundle.test, device).accuracy))
        print(f"seed {seed}: original test accuracy {originals[-1]['test_accuracy']:.2f}% "
              f"in {originals[-1]['train_seconds']:.1f} s")
        scenario = make_scenario(bundle, args.forget, seed=seed)
        rows += compare(original, scenario, methods, configs, seed=seed,
                        runtime=Runtime(device=device, execution=fast))
        if "wsscl" in methods:
            reference = unlearn(original, scenario.forget, scenario.retain, "wsscl", configs["wsscl"],
                                holdout=scenario.holdout, seed=seed,
                                runtime=Runtime(device=device, backend="torch", execution=Execution.reference()))
            fast_rte = next(r["RTE"] for r in rows[::-1] if r["method"] == "wsscl")
            wsscl_paths.append(dict(seed=seed, reference_s=reference.rte, fast_s=fast_rte,
                                    speedup=reference.rte / fast_rte))
            print(f"  WSS-CL reference path {reference.rte:.1f} s, fast path {fast_rte:.1f} s: "
                  f"{reference.rte / fast_rte:.2f}x")

    throughput = throughput_table(lambda: recipe.build_model(bundle), device, 256 if not args.smoke else 32,
                                  100 if not args.smoke else 3)
    verdict = wsscl_vs_best_baseline(rows, methods)
    title = (f"{bundle.name} ({len(bundle.train)} train), {recipe.arch}, {recipe.train.epochs} epochs: "
             f"forgetting {args.forget}, seeds {args.seeds}, fast path")
    measured_with = environment(device)
    table = write_report(rows, args.out, name, title, provenance=provenance(measured_with), extra=dict(
        environment=measured_with, originals=originals, wsscl_reference_vs_fast=wsscl_paths,
        throughput=throughput, verdict=verdict, execution=fast.to_dict(), args=vars(args),
        configs={m: configs[m].to_dict() for m in ("retrain", *methods)}))
    print(table)
    print_verdict(verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
