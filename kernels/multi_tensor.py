"""Multi-tensor apply for Triton: one launch over a list of tensors through a pointer table.

The launcher writes one row of addresses per tensor (its parameter, gradient, state, ...) and
cuts every tensor into BLOCK-element chunks; program k looks up chunk k's tensor and start in
``chunk_tensor`` / ``chunk_start`` and works on those elements. The tensors stay where their
owner keeps them; the table costs one small asynchronous host-to-device copy when the
addresses change, and nothing when they do not.
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl


@triton.jit
def chunk_of(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, chunk, BLOCK: tl.constexpr, FIELDS: tl.constexpr):
    """(tensor index, element offsets, in-range mask, address of the tensor's table row) of ``chunk``."""
    tensor = tl.load(CHUNK_TENSOR + chunk)
    offsets = tl.multiple_of(tl.load(CHUNK_START + chunk), BLOCK) + tl.arange(0, BLOCK)  # chunks start at k BLOCK
    in_range = offsets < tl.load(NUMEL + tensor)
    return tensor, offsets, in_range, TABLE + tensor * FIELDS


@functools.lru_cache(maxsize=64)
def _chunk_map(numels: tuple[int, ...], block: int, device: torch.device):
    """(chunk -> tensor, chunk -> start, numel per tensor) on ``device``; the same list of
    shapes gets the same device tensors on every step."""
    chunk_tensor = [i for i, n in enumerate(numels) for _ in range(triton.cdiv(n, block))]
    chunk_start = [s for n in numels for s in range(0, n, block)]
    return (to_device(chunk_tensor, torch.int32, device), to_device(chunk_start, torch.int64, device),
            to_device(list(numels), torch.int64, device), len(chunk_tensor))


def to_device(values, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small host list on ``device`` without a host sync: staged in pinned memory on CUDA
    (a copy from pageable memory would wait for the stream)."""
    host = torch.tensor(values, dtype=dtype)
    if device.type != "cuda":
        return host
    return host.pin_memory().to(device, non_blocking=True)


def chunk_table(tensors, rows, block: int):
    """Pointer table and chunk map for ``tensors``, on their device.

    ``rows[i]`` lists the tensors whose addresses make up tensor i's table row. Returns
    (table (T, F) int64, chunk -> tensor int32, chunk -> start int64, numel per tensor int64,
    number of chunks).
    """
    device = tensors[0].device
    table = _pointer_table(tuple(tuple(t.data_ptr() for t in row) for row in rows), device)
    return (table, *_chunk_map(tuple(t.numel() for t in tensors), block, device))


@functools.lru_cache(maxsize=8)
def _pointer_table(addresses: tuple[tuple[int, ...], ...], device: torch.device) -> torch.Tensor:
    """The (T, F) address table on ``device``. Cached by the addresses themselves: an optimizer
    whose tensors stay put (the caching allocator usually hands a new gradient the old one's
    block) uploads its table once."""
    return to_device([list(row) for row in addresses], torch.int64, device)


def contiguous(tensors):
    """(contiguous versions, [(original, copy)] for the ones that had to be copied)."""
    out = [t if t.is_contiguous() else t.contiguous() for t in tensors]
    return out, [(a, b) for a, b in zip(tensors, out) if a is not b]
