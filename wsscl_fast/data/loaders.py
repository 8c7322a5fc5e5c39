"""Loaders: the one rule that picks how batches are made, and the helpers that read datasets.

:func:`make_loader` decides, for training, the methods and the metrics alike:
- a DataLoader (or DeviceLoader) the caller built is used as it is;
- on the fast path (``device`` given, one process), an image-tensor Dataset gets a
  :class:`DeviceLoader`: the whole uint8 image tensor on the accelerator, batches cut,
  shuffled and normalised there;
- under torchrun (``shard=True``), a Dataset gets this rank's share
  (:func:`~wsscl_fast.distributed.sharded_loader`);
- otherwise a seeded DataLoader.

:class:`DeviceLoader` moves the uint8 images to the device once (CIFAR-10's 50,000 training
images: 150 MB), draws each pass's order with ``torch.randperm`` on a seeded CPU generator, and
yields ``(x, y)`` already on the device: x = (uint8 / 255 - mean) / std, the same ops as the
dataset's items. Without shuffling its batches equal a DataLoader's; with shuffling the order is
its own (a DataLoader also draws worker seeds from its generator).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from .. import distributed
from .formats import ImageTensorDataset


def make_loader(data, batch_size: int, shuffle: bool, seed: int = 0, device: torch.device | None = None,
                shard: bool = True):
    """Batches of ``data`` by the rule in the module docstring: :func:`as_loader`'s checks,
    then a :class:`DeviceLoader` with ``device`` (single process, image tensors), this rank's
    shard under torchrun with ``shard``, else the checked DataLoader."""
    checked = as_loader(data, batch_size, shuffle=shuffle, seed=seed)
    if not isinstance(data, Dataset):
        return checked
    if device is not None and not distributed.active() and image_tensors(data) is not None:
        return DeviceLoader(data, batch_size, shuffle, seed, device)
    if shard and distributed.active():
        return distributed.sharded_loader(data, batch_size, shuffle, seed)
    return checked


def as_loader(data, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader for ``data``: DataLoaders (and DeviceLoaders) pass through, Datasets get a
    seeded one."""
    if isinstance(data, DeviceLoader):
        return data
    if isinstance(data, DataLoader):
        if len(data.dataset) == 0:
            raise ValueError("the DataLoader's dataset is empty")
        return data
    if not isinstance(data, Dataset):
        raise TypeError(f"expected a torch Dataset or DataLoader, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("the dataset is empty")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)


def to_tensors(data, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise a (small) dataset or loader as (images, labels) tensors, in order."""
    xs, ys = [], []
    for batch in as_loader(data, batch_size, shuffle=False):
        xs.append(batch[0])
        ys.append(batch[1])
    return torch.cat(xs), torch.cat(ys).long()


def dataset_labels(data) -> torch.Tensor:
    """All labels of a Dataset or DataLoader, read from ``labels``/``targets`` attributes
    (through Subsets) when present, otherwise by one pass over the data."""
    dataset = data if isinstance(data, Dataset) else data.dataset  # a DataLoader or DeviceLoader
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    for attribute in ("labels", "targets"):
        if isinstance(getattr(dataset, attribute, None), (torch.Tensor, list, np.ndarray)):
            return torch.as_tensor(getattr(dataset, attribute)).long()
    return to_tensors(dataset)[1]


def dataset_names(data) -> tuple:
    """The samples' own ids (``ImageTensorDataset.names``) of a Dataset or DataLoader, through
    Subsets and ConcatDatasets; positions as strings for datasets without names."""
    dataset = data if isinstance(data, Dataset) else data.dataset
    if isinstance(dataset, Subset):
        names = dataset_names(dataset.dataset)
        return tuple(names[i] for i in dataset.indices)
    if isinstance(dataset, ConcatDataset):
        return tuple(name for part in dataset.datasets for name in dataset_names(part))
    return tuple(getattr(dataset, "names", None) or (str(i) for i in range(len(dataset))))


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
