"""Checks of what ``unlearn()`` is given, each refusing by name before any work: the model, the
samples' inputs and their labels, and the loaders built from the user's data."""
from __future__ import annotations

import torch
from torch import nn

from .data import dataset_labels, make_loader


def training_loader(name: str, data, batch_size: int, seed: int, device):
    """A shuffled loader of ``data``; a refusal names the argument (``name``)."""
    try:
        return make_loader(data, batch_size, shuffle=True, seed=seed, device=device)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def check_model(model: nn.Module) -> None:
    """A model unlearn() can train: some trainable parameters, all of them fp32."""
    params = list(model.parameters())
    if not any(p.requires_grad for p in params):
        raise ValueError("model has no trainable parameters (every requires_grad is False); unfreeze the layers "
                         "that unlearning may change")
    dtypes = sorted({str(p.dtype) for p in params if p.dtype != torch.float32})
    if dtypes:
        raise TypeError(f"model parameters must be float32, got {dtypes}; unlearn() keeps fp32 weights and runs "
                        "bf16 through autocast (Execution.fast()), so pass model.float()")


def check_labels(name: str, loader, num_classes: int) -> None:
    """Labels must be integer class indices within the model's ``num_classes`` outputs."""
    label = loader.dataset[0][1]
    if (isinstance(label, torch.Tensor) and label.is_floating_point()) or isinstance(label, float):
        raise TypeError(f"{name}: labels must be integer class indices, got {label!r}")
    labels = dataset_labels(loader.dataset)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel():
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}) (the model's outputs), got "
                         f"{bad[:5].tolist()}")


AUGMENTATION_FIELDS = ("aug_pad", "aug_flip", "view_pad", "view_flip")  #: config fields that crop or flip inputs


def check_inputs(name: str, loader, method: str, config) -> None:
    """Inputs must be float tensors, and images (C, H, W) per sample whenever the config crops
    or flips them; refused by name before any work."""
    sample = loader.dataset[0][0]
    try:
        x = torch.as_tensor(sample)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name}: samples must be (image, label) pairs of tensors or arrays, got a "
                        f"{type(sample).__name__} input") from None
    if not x.is_floating_point():
        raise TypeError(f"{name}: inputs must be float tensors (normalised images), got {x.dtype}; convert integer "
                        "images first, e.g. x.float() / 255 followed by your normalisation")
    augmenting = [f for f in AUGMENTATION_FIELDS if getattr(config, f, 0)]
    if x.dim() != 3 and augmenting:
        raise ValueError(f"{name}: {method} crops and flips its inputs ({', '.join(augmenting)} set), which needs "
                         f"images of shape (C, H, W) per sample, batches (N, C, H, W); got samples of shape "
                         f"{tuple(x.shape)}. For other inputs switch augmentation off: "
                         f"{', '.join(f'{f}=0' for f in augmenting)}")
