r"""Saliency selection in Triton: the global top-k threshold by radix select, then the mask.

Threshold. Every fp32 score x maps to an unsigned 32-bit key that orders like x
(key = ~bits for negatives, bits | 2^31 otherwise). The k-th largest score is the key of
ascending rank r = n - k, found one 8-bit digit at a time from the top: four passes, each a
256-bin histogram (``tl.histogram``, per program, then one integer ``atomic_add`` per bin, so
the counts are exact and deterministic) over the scores whose higher digits equal the prefix
found so far. Between passes a few torch ops on the device pick the digit whose cumulative
count passes r and lower r; nothing returns to the host, and no sort or copy of the scores is
made (``torch.kthvalue`` sorts, and ``torch.quantile`` refuses more than 16M elements).

Emission, one pass per launch over all score tensors (multi-tensor apply):
    hard: m = 1[g >= t] as bool, or packed 8 coordinates per byte (least significant bit first);
    soft: w = clamp(g / t, 0, 1) (w = 1 where g >= t) as float32, or
          uint8 q = floor(255 w + 1/2), raised to 1 where w > 0.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..backends import triton_interpreted as interpreted
from . import TARGET_ARCHS
from .multi_tensor import chunk_of, chunk_table, contiguous

DIGIT_BITS = 8
BINS = 1 << DIGIT_BITS


@triton.jit
def _ordered_key(x):
    bits = x.to(tl.uint32, bitcast=True)
    return tl.where((bits & 0x80000000) != 0, bits ^ 0xFFFFFFFF, bits | 0x80000000)


@triton.jit
def _radix_histogram_kernel(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, num_chunks, PREFIX, HIST,
                            SHIFT: tl.constexpr, BLOCK: tl.constexpr):
    """HIST[d] += #{x : digit of key(x) at SHIFT == d, higher digits == PREFIX}; each program
    walks chunks pid, pid + programs, ... and adds its histogram once."""
    prefix = tl.load(PREFIX).to(tl.uint32)
    counts = tl.zeros([256], dtype=tl.int32)
    for chunk in range(tl.program_id(0), num_chunks, tl.num_programs(0)):
        tensor, offsets, in_range, row = chunk_of(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, chunk, BLOCK, 1)
        scores = tl.load(row).to(tl.pointer_type(tl.float32))
        key = _ordered_key(tl.load(scores + offsets, mask=in_range, other=0.0))
        if SHIFT == 24:
            wanted = in_range
        else:
            wanted = in_range & ((key >> (SHIFT + 8)) == prefix)
        counts += tl.histogram(((key >> SHIFT) & 0xFF).to(tl.int32), 256, mask=wanted)
    tl.atomic_add(HIST + tl.arange(0, 256), counts)


@triton.jit
def _emit_kernel(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, THRESHOLD, OUT: tl.constexpr, BLOCK: tl.constexpr):
    # table row: scores, output
    tensor, offsets, in_range, row = chunk_of(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, tl.program_id(0), BLOCK, 2)
    g = tl.load(tl.load(row).to(tl.pointer_type(tl.float32)) + offsets, mask=in_range, other=0.0)
    out = tl.load(row + 1)
    t = tl.load(THRESHOLD)
    selected = g >= t
    if OUT == "bool":
        tl.store(out.to(tl.pointer_type(tl.int8)) + offsets, selected.to(tl.int8), mask=in_range)
    elif OUT == "bits":
        bit = (selected & in_range).to(tl.int32) << (tl.arange(0, BLOCK) % 8)
        packed = tl.sum(tl.reshape(bit, (BLOCK // 8, 8)), axis=1)
        byte = tl.load(CHUNK_START + tl.program_id(0)) // 8 + tl.arange(0, BLOCK // 8)
        num_bytes = (tl.load(NUMEL + tensor) + 7) // 8
        tl.store(out.to(tl.pointer_type(tl.uint8)) + byte, packed.to(tl.uint8), mask=byte < num_bytes)
    else:
        w = tl.where(selected, 1.0, tl.minimum(tl.maximum(tl.div_rn(g, t), 0.0), 1.0))  # IEEE, as the reference
        if OUT == "uint8":
            q = tl.minimum(tl.floor(w * 255.0 + 0.5), 255.0)
            q = tl.where(w > 0, tl.maximum(q, 1.0), q)
            tl.store(out.to(tl.pointer_type(tl.uint8)) + offsets, q.to(tl.uint8), mask=in_range)
        else:
            tl.store(out.to(tl.pointer_type(tl.float32)) + offsets, w, mask=in_range)


HISTOGRAM_BLOCK, EMIT_BLOCK, NUM_WARPS = 4096, 2048, 4  # GPU launches (the compile gate reads these)
INTERPRETER_BLOCK = 8192  # under the interpreter, fewer and larger programs are cheaper
EMIT_KINDS = {("hard", "dense"): "bool", ("hard", "bits"): "bits", ("soft", "dense"): "float32",
              ("soft", "uint8"): "uint8"}


def _launch_settings(device: torch.device) -> tuple[int, int]:
    """(BLOCK, programs) for the histogram passes: a few programs per SM on a GPU so each adds
    its 256 counts once."""
    if interpreted():
        return INTERPRETER_BLOCK, 4
    return HISTOGRAM_BLOCK, 4 * torch.cuda.get_device_properties(device).multi_processor_count


def _key_to_value(key: torch.Tensor) -> torch.Tensor:
    """Inverse of ``_ordered_key`` for a 0-d int64 key tensor: the fp32 score (on the device)."""
    bits = torch.where(key >= 2**31, key - 2**31, (2**32 - 1) - key)
    return torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32).view(torch.float32)


def saliency_threshold_triton(scores: list[torch.Tensor], k: int) -> torch.Tensor:
    """The k-th largest value over all of ``scores`` (contiguous fp32, one device) as a 0-d
    fp32 tensor on that device, without a sort and without a host sync."""
    n = sum(s.numel() for s in scores)
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, {n}], got {k}")
    device = scores[0].device
    block, programs = _launch_settings(device)
    table, chunk_tensor, chunk_start, numel, chunks = chunk_table(scores, [[s] for s in scores], block)
    prefix = torch.zeros((), dtype=torch.int64, device=device)
    rank = torch.full((), n - k, dtype=torch.int64, device=device)
    for shift in range(32 - DIGIT_BITS, -1, -DIGIT_BITS):
        hist = torch.zeros(BINS, dtype=torch.int32, device=device)
        _radix_histogram_kernel[(min(chunks, programs),)](table, chunk_tensor, chunk_start, numel, chunks, prefix,
                                                          hist, SHIFT=shift, BLOCK=block, num_warps=NUM_WARPS)
        cumulative = hist.to(torch.int64).cumsum(0)
        digit = (cumulative <= rank).sum()
        rank = rank - torch.where(digit > 0, cumulative[(digit - 1).clamp(min=0)], 0)
        prefix = prefix * BINS + digit
    return _key_to_value(prefix)


def saliency_emit_triton(scores: list[torch.Tensor], threshold: torch.Tensor, mode: str,
                         storage: str) -> list[torch.Tensor]:
    """Masks or weights from ``scores`` and a 0-d ``threshold`` in one launch (see module doc)."""
    out_kind = EMIT_KINDS[(mode, storage)]
    if out_kind == "bits":
        outputs = [torch.empty((s.numel() + 7) // 8, dtype=torch.uint8, device=s.device) for s in scores]
    else:
        dtype = {"bool": torch.bool, "float32": torch.float32, "uint8": torch.uint8}[out_kind]
        outputs = [torch.empty(s.shape, dtype=dtype, device=s.device) for s in scores]
    block = INTERPRETER_BLOCK if interpreted() else EMIT_BLOCK
    table, chunk_tensor, chunk_start, numel, chunks = chunk_table(scores, list(zip(scores, outputs)), block)
    _emit_kernel[(chunks,)](table, chunk_tensor, chunk_start, numel, threshold, OUT=out_kind, BLOCK=block,
                            num_warps=NUM_WARPS)
    return outputs


def saliency_from_scores_triton(scores, keep: int, mode: str, storage: str):
    """Threshold at the ``keep``-th largest score, then one-pass emission (see module doc)."""
    scores, _ = contiguous([s.detach().float() for s in scores])
    return saliency_emit_triton(scores, saliency_threshold_triton(scores, keep), mode, storage)


def compile_specs():
    """The four histogram passes and every emission variant, at the GPU blocks, for the
    compile gate (no tl.dot here: any spill fails)."""
    from .aot import CompileSpec, kernel_types

    specs = []
    for arch in TARGET_ARCHS:
        types, divisible = kernel_types(_radix_histogram_kernel, element="fp32")
        for shift in range(32 - DIGIT_BITS, -1, -DIGIT_BITS):
            specs.append(CompileSpec(_radix_histogram_kernel, f"radix histogram, shift {shift}", types,
                                     dict(SHIFT=shift, BLOCK=HISTOGRAM_BLOCK), NUM_WARPS, 1, arch, no_spills=True,
                                     quick=arch == 90 and shift == 0, divisible=divisible))
        types, divisible = kernel_types(_emit_kernel, element="fp32")
        for out in EMIT_KINDS.values():
            specs.append(CompileSpec(_emit_kernel, f"saliency emit {out}", types, dict(OUT=out, BLOCK=EMIT_BLOCK),
                                     NUM_WARPS, 1, arch, no_spills=True, quick=arch == 90, divisible=divisible))
    return specs
