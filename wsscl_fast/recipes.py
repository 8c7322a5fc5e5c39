"""Per-dataset defaults: architecture, training recipe and method configs.

Only what depends on the data changes between datasets (batch size, augmentation, model
size); the method hyperparameters keep the defaults of their config classes.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import BaselineConfig, TrainConfig, WSSCLConfig
from .data import DataBundle
from .methods import METHODS
from .models import build_model



@dataclass
class Recipe:
    arch: str
    width: int | None
    train: TrainConfig
    method_configs: dict

    def build_model(self, bundle: DataBundle):
        kwargs = {"width": self.width} if self.width else {}
        return build_model(self.arch, bundle.num_classes, bundle.image_shape[0], **kwargs)


def recipe_for(bundle: DataBundle, arch: str | None = None, epochs: int | None = None,
               train: TrainConfig | None = None) -> Recipe:
    """Defaults for ``bundle``: small CNN for digits/Fashion-MNIST, ResNet-18 for CIFAR-10.
    ``train`` (e.g. a checkpoint's own recipe) replaces the default training recipe, which
    Retrain reuses, so that Retrain is trained like the original."""
    small = bundle.name == "digits"
    arch = arch or ("resnet18" if bundle.name == "cifar10" else "small_cnn")
    batch_size = 64 if small else 256 if arch == "resnet18" else 128
    data_settings = dict(batch_size=batch_size, aug_pad=bundle.aug_pad, aug_flip=bundle.aug_flip)
    if train is None:
        train = TrainConfig(epochs=epochs if epochs is not None else (20 if small else 30), **data_settings)
    views = dict(view_pad=bundle.aug_pad, view_flip=bundle.aug_flip)
    configs = {"retrain": train, "wsscl": WSSCLConfig(forget_batch_size=batch_size, **data_settings, **views)}
    for name in METHODS:
        if name not in configs:
            configs[name] = BaselineConfig(**data_settings)
    return Recipe(arch, 32 if arch == "small_cnn" else None, train, configs)


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
