"""On-device batches: the whole uint8 image tensor on the accelerator, shuffled and
normalised there (the fast data path).

:class:`DeviceLoader` stands in for a DataLoader over an
:class:`~wsscl_fast.data.ImageTensorDataset` (or a Subset of one). It moves the uint8 images to
the device once (CIFAR-10's 50,000 training images: 150 MB), draws each pass's order with
``torch.randperm`` on a seeded CPU generator, and yields ``(x, y)`` already on the device:
x = (uint8 / 255 - mean) / std, (B, C, H, W) float32, the same ops as the dataset's items.
No per-image Python work and no host-to-device copy of images inside the loop. Augmentation
stays on batches (:func:`~wsscl_fast.data.augment_batch`). Without shuffling the batches equal
a DataLoader's; with shuffling the order is its own (a DataLoader also draws worker seeds from
its generator), so the fast and the reference path see the same data in different orders.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset, Subset

from .data import ImageTensorDataset


def image_tensors(dataset: Dataset):
    """(uint8 images, labels, source dataset) of an ImageTensorDataset or (nested) Subset of
    one, indexed without copying the source first; None for any other dataset."""
    indices = None
    while isinstance(dataset, Subset):
        subset_indices = torch.as_tensor(dataset.indices, dtype=torch.long)
        indices = subset_indices if indices is None else subset_indices[indices]
        dataset = dataset.dataset
    if not isinstance(dataset, ImageTensorDataset):
        return None
    if indices is None:
        return dataset.images, dataset.labels, dataset
    return dataset.images[indices], dataset.labels[indices], dataset


class DeviceLoader:
    """A DataLoader look-alike (``len``, iteration, ``.dataset``, ``.batch_size``,
    ``.generator``) whose batches live on ``device``; drop_last is False, as in a DataLoader."""

    sampler = None  # RunState tracks .generator, as for a plain shuffled DataLoader

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool, seed: int, device: torch.device):
        resolved = image_tensors(dataset)
        if resolved is None:
            raise TypeError(f"DeviceLoader needs an ImageTensorDataset or a Subset of one, got {type(dataset).__name__}")
        images, labels, source = resolved
        if len(labels) == 0:
            raise ValueError("the dataset is empty")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.mean, self.std = source.mean.to(self.device), source.std.to(self.device)  # (C, 1, 1)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.device.type == "cuda":  # from pinned memory the copy does not wait for the stream
            order = order.pin_memory()
        order = order.to(self.device, non_blocking=True)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            yield (self.images[index].float() / 255 - self.mean) / self.std, self.labels[index]
