"""Per-dataset defaults: architecture, training recipe and method configs.

Only what depends on the data and the model changes between datasets (batch size,
augmentation, model width, training length), and it is read from :data:`PRESETS`; the method
hyperparameters keep the defaults of their config classes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from .config import TrainConfig, WSSCLConfig
from .data import DataBundle
from .methods import METHODS
from .models import build_model


@dataclass(frozen=True)
class Preset:
    """The data- and model-dependent settings: the batch size of training and of every method,
    the original model's training epochs and the model width (None: the architecture's own)."""

    batch_size: int
    epochs: int
    width: int | None = None


DEFAULT_ARCH = {"digits": "small_cnn", "fashion-mnist": "small_cnn", "cifar10": "resnet18"}
PRESETS = {  # (dataset, architecture) -> Preset; "*" is any other architecture
    ("digits", "small_cnn"): Preset(batch_size=64, epochs=20, width=32),
    ("digits", "*"): Preset(batch_size=64, epochs=20),
    ("cifar10", "resnet18"): Preset(batch_size=256, epochs=30),
    ("cifar10", "small_cnn"): Preset(batch_size=128, epochs=30, width=32),
    ("cifar10", "*"): Preset(batch_size=128, epochs=30),
    ("fashion-mnist", "small_cnn"): Preset(batch_size=128, epochs=30, width=32),
    ("fashion-mnist", "resnet18"): Preset(batch_size=256, epochs=30),
    ("fashion-mnist", "*"): Preset(batch_size=128, epochs=30),
}


@dataclass
class Recipe:
    arch: str
    width: int | None
    train: TrainConfig
    method_configs: dict

    def build_model(self, bundle: DataBundle):
        kwargs = {"width": self.width} if self.width else {}
        return build_model(self.arch, bundle.num_classes, bundle.image_shape[0], **kwargs)


TUNED_PRESETS = Path(__file__).with_name("presets") / "tuned.json"


def tuned_configs(dataset: str, scenario: str) -> dict:
    """The method configs that the quality bench's tuning chose for ``dataset`` ("cifar10",
    "fashion-mnist") and ``scenario`` ("random", "classwise"): {method: config}. They were tuned
    on that bench's small CNN and data subset (docs/method.md, "Tuning"); elsewhere they are a
    starting point, not a guarantee."""
    from .methods import METHODS

    presets = json.loads(TUNED_PRESETS.read_text())["presets"] if TUNED_PRESETS.is_file() else {}
    if scenario not in presets.get(dataset, {}):
        available = sorted(f"{d}/{s}" for d, by_scenario in presets.items() for s in by_scenario)
        raise ValueError(f"no tuned preset for {dataset}/{scenario}; tuned presets exist for {available or 'nothing'}")
    return {method: METHODS[method].config_class.from_dict(values)
            for method, values in presets[dataset][scenario]["configs"].items()}


def recipe_for(bundle: DataBundle, arch: str | None = None, epochs: int | None = None,
               train: TrainConfig | None = None, width: int | None = None, tuned_for: str | None = None) -> Recipe:
    """Defaults for ``bundle`` from :data:`PRESETS` (small CNN for digits/Fashion-MNIST,
    ResNet-18 for CIFAR-10). ``epochs`` and ``width`` replace the preset's; ``train`` (e.g. a
    checkpoint's own recipe) replaces the default training recipe, which Retrain reuses, so that
    Retrain is trained like the original. ``tuned_for`` ("random" or "classwise") takes the
    method configs that the quality bench's tuning chose for this dataset (:func:`tuned_configs`)."""
    arch = arch or DEFAULT_ARCH[bundle.name]
    preset = PRESETS.get((bundle.name, arch)) or PRESETS[(bundle.name, "*")]
    data_settings = dict(batch_size=preset.batch_size, aug_pad=bundle.aug_pad, aug_flip=bundle.aug_flip)
    if train is None:
        train = TrainConfig(epochs=epochs if epochs is not None else preset.epochs, **data_settings)
    views = dict(view_pad=bundle.aug_pad, view_flip=bundle.aug_flip)
    configs = {"retrain": train, "wsscl": WSSCLConfig(forget_batch_size=preset.batch_size, **data_settings, **views)}
    for name, spec in METHODS.items():
        if name not in configs:
            has_views = "view_pad" in {f.name for f in fields(spec.config_class)}
            configs[name] = spec.config_class(**data_settings, **(views if has_views else {}))
    if tuned_for is not None:
        configs.update(tuned_configs(bundle.name, tuned_for))
    return Recipe(arch, width or preset.width, train, configs)


def apply_overrides(configs: dict, overrides: list[str], default_method: str | None = None,
                    used: tuple[str, ...] | None = None) -> dict:
    """Apply ``method.field=value`` (or ``field=value`` for ``default_method``) strings; with
    ``used``, an override of a method that the run does not use is refused, not ignored."""
    configs = dict(configs)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects FIELD=VALUE or METHOD.FIELD=VALUE, got {item!r}")
        method, _, field_name = key.rpartition(".")
        method = method or default_method
        if method not in configs:
            raise ValueError(f"--set {item!r}: unknown method {method!r}; choose from {sorted(configs)}")
        if used is not None and method not in used:
            raise ValueError(f"--set {item!r} configures {method}, which this run does not use ({', '.join(used)})")
        current = configs[method].to_dict()
        if field_name not in current:
            raise ValueError(f"--set {item!r}: {type(configs[method]).__name__} has no field {field_name!r}; "
                             f"fields: {sorted(current)}")
        reads = METHODS[method].reads
        if field_name not in reads:
            raise ValueError(f"--set {item!r}: {method} does not read {field_name!r}, so setting it would change "
                             f"nothing; {method} reads: {', '.join(reads)}")
        try:
            current[field_name] = _parse_like(raw, current[field_name])
        except ValueError:
            raise ValueError(f"--set {item!r}: {field_name} expects {type(current[field_name]).__name__}, "
                             f"got {raw!r}") from None
        configs[method] = type(configs[method]).from_dict(current)
    return configs


def _parse_like(raw: str, example):
    if isinstance(example, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true/false, got {raw!r}")
        return raw.lower() in ("true", "1")
    for kind in (int, float):
        if isinstance(example, kind):
            return kind(raw)
    try:
        return float(raw)
    except ValueError:
        return raw


def checkpoint_recipe(bundle, blob: dict):
    """The recipe of a checkpoint: its architecture, and the training recipe it was trained
    with (so that Retrain is like-for-like), when the checkpoint records one."""
    train = TrainConfig.from_dict(blob["train_config"]) if blob.get("train_config") else None
    return recipe_for(bundle, blob["arch"], train=train)


def model_from_checkpoint(blob: dict, bundle, path: str):
    """The model a loaded checkpoint ``blob`` (read from ``path``) describes, for ``bundle``."""
    model = checkpoint_recipe(bundle, blob).build_model(bundle)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path} does not match a {blob['arch']} for {bundle.name} "
                         f"({bundle.num_classes} classes): {str(exc).splitlines()[0]}") from None
    return model
