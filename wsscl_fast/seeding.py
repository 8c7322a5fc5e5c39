"""Named random streams.

Every random draw of a run comes from a generator seeded by (the run's seed, a stream name),
so adding, removing or reordering one stream never shifts another, and two streams of the
same run never share a seed by accident (as hand-assigned ``seed * 1000 + offset`` could).
The one exception is :func:`training_generator`, which every trained original and Retrain
(and the committed results built on them) has used since the first release.
"""
from __future__ import annotations

import hashlib

import torch


def stream_seed(seed: int, name: str) -> int:
    """The seed of stream ``name`` of a run seeded with ``seed``: the first 63 bits of
    BLAKE2b("<seed>/<name>"), stable across processes, platforms and Python versions."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string naming the stream, got {name!r}")
    digest = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def stream_generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded for stream ``name`` of run ``seed``."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, name))


def training_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The augmentation generator of ``train_model``: seeded with the run seed itself, not a
    named stream, so that originals and Retrains trained before the streams existed reproduce."""
    return torch.Generator(device=device).manual_seed(seed)
