"""What the quality scripts share: the two regimes (data, model, training recipe), the cells
(regime x scenario) and their names, and the cache of trained originals and Retrains.

A cell is a regime and a forget spec: ``random:0.1`` or ``class:0``; its name is
``<regime>_<random|classwise>`` (:func:`scenario_name`).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import time
from pathlib import Path

import torch

from benchmarks.harness import REPO
from benchmarks.quality.tuning import TuningSeed, distance_points, split_margins, split_validation, validation_metrics

from wsscl_fast.checkpoint import atomic_save
from wsscl_fast.data import FASHION_MNIST_ROOT, load_cifar10_bundle, load_fashion_mnist_bundle, make_scenario
from wsscl_fast.methods import UNLEARNING_METHODS, get_method
from wsscl_fast.metrics import predict_split
from wsscl_fast.recipes import recipe_for
from wsscl_fast.training import train_model
from wsscl_fast.work import retrain_work

CACHE = REPO / "benchmarks" / ".cache" / "quality_cpu"


def cached_training(key: str, build, train_data, config, seed: int, desc: str):
    """Train (or load from the cache) a model; returns (model, training seconds).

    ``seed`` fixes the initial weights as well as the training: the model is built after
    ``torch.manual_seed(seed)``, since torch (2.14 here) starts its default generator from a
    random seed in each process and a key must name one model whatever ran before it. A second
    process asking for a key that is being trained waits for that model (an exclusive lock per
    key) instead of training its own copy."""
    path = CACHE / f"{key}.pt"
    with exclusive_lock(path.with_suffix(".lock")):
        torch.manual_seed(seed)
        model = build()
        if path.exists():
            blob = torch.load(path, weights_only=True)
            model.load_state_dict(blob["state_dict"])
            return model.eval(), blob["seconds"]
        start = time.perf_counter()
        train_model(model, train_data, config, torch.device("cpu"), seed=seed, progress=True, desc=desc)
        seconds = time.perf_counter() - start
        atomic_save({"state_dict": model.state_dict(), "seconds": seconds}, path)
    return model.eval(), seconds


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: per regime: the data, the model width and the original's training recipe (Retrain's too)
REGIMES = {
    "memorise": dict(train_size=5000, test_size=1000, validation_size=500, width=16, epochs=30,
                     train=dict(batch_size=64, lr=0.05, aug_pad=0, aug_flip=False)),
    "generalise": dict(train_size=10000, test_size=2000, validation_size=1000, width=16, epochs=12,
                       train=dict(batch_size=128, lr=0.05, aug_pad=2, aug_flip=True)),
}


def cache_tag(regime_name: str) -> str:
    """The cache key part of a regime's originals and Retrains."""
    regime = REGIMES[regime_name]
    return f"{regime_name}-n{regime['train_size']}-w{regime['width']}-e{regime['epochs']}"


def load_regime(args):
    """(bundle, recipe, method configs) of ``args.regime``."""
    regime = REGIMES[args.regime]
    if args.regime == "memorise":
        bundle = load_cifar10_bundle(args.data_root, regime["train_size"], regime["test_size"], seed=0,
                                     validation_size=regime["validation_size"])
    else:
        bundle = load_fashion_mnist_bundle(FASHION_MNIST_ROOT, regime["train_size"], regime["test_size"], seed=0,
                                           validation_size=regime["validation_size"])
    recipe = recipe_for(bundle, arch="small_cnn", epochs=regime["epochs"], width=regime["width"])
    recipe.train = recipe.train.replace(**regime["train"])
    # the methods train on batches augmented like the original's (none in the memorising regime);
    # the views of WSS-CL and CoUn stay augmented
    augmentation = dict(aug_pad=regime["train"]["aug_pad"], aug_flip=regime["train"]["aug_flip"])
    configs = {name: config.replace(**augmentation) for name, config in recipe.method_configs.items()}
    return bundle, recipe, {**configs, "retrain": recipe.train}


def original_and_retrain(args, bundle, recipe, configs, seed: int, tag: str):
    """(original, its accuracies, the scenario split for tuning, Retrain model, Retrain seconds) of one seed."""
    original, train_seconds = cached_training(f"original-{tag}-s{seed}", lambda: recipe.build_model(bundle),
                                              bundle.train, recipe.train, seed, f"original seed {seed}")
    accuracies = dict(seed=seed, train_accuracy=predict_split(original, bundle.train).accuracy,
                      test_accuracy=predict_split(original, bundle.test).accuracy, train_seconds=train_seconds)
    print(f"seed {seed}: original train acc {accuracies['train_accuracy']:.1f}%, "
          f"test acc {accuracies['test_accuracy']:.1f}%", flush=True)
    scenario = make_scenario(bundle, args.forget, seed=seed)
    retrain_model, retrain_seconds = cached_training(
        f"retrain-{tag}-{args.forget.replace(':', '')}-s{seed}", lambda: recipe.build_model(bundle),
        scenario.retain, configs["retrain"], seed, f"retrain seed {seed}")
    return original, accuracies, split_validation(scenario), retrain_model, retrain_seconds


def tuning_seed(args, bundle, recipe, configs, seed: int, tag: str) -> TuningSeed:
    """A tuning seed's original, scenario halves, Retrain metrics, Retrain work and Retrain's
    margins on the margin objective's points (models cached)."""
    original, _, (run_on, scoring), retrain_model, _ = original_and_retrain(args, bundle, recipe, configs, seed, tag)
    points = distance_points(run_on, scoring)
    return TuningSeed(seed, original, run_on, scoring, validation_metrics(retrain_model, scoring),
                      retrain_work(configs["retrain"].epochs, len(run_on.retain)), points,
                      split_margins(retrain_model, points))


def scenario_name(forget: str) -> str:
    """"classwise" for a ``class:`` forget spec (or request sequence), else "random"."""
    return "classwise" if forget.startswith("class") else "random"


def cell_name(regime: str, forget: str) -> str:
    return f"{regime}_{scenario_name(forget)}"


def tuned_configs(regime: str, forget: str, path: str | Path | None = None) -> tuple[dict, str]:
    """{method: config} as tuned for the cell, and the file they come from: ``path`` (a result
    with a ``configs`` mapping, as ``tune_cell.py`` writes) or, by default, the quality bench's."""
    path = Path(path) if path else REPO / "benchmarks" / "results" / f"quality_{cell_name(regime, forget)}.json"
    stored = json.loads(path.read_text())["configs"]
    missing = [m for m in UNLEARNING_METHODS if m not in stored]
    if missing:
        raise ValueError(f"{path} has no config for {missing}: tune every method of the cell")
    configs = {m: get_method(m).config_class.from_dict(stored[m]) for m in UNLEARNING_METHODS}
    path = path.resolve()
    return configs, str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
