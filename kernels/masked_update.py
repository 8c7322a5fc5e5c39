r"""Saliency-masked SGD and AdamW steps in Triton: one launch per step for a whole group.

Multi-tensor apply over a pointer table: the launcher writes, for every tensor of the group,
the addresses of its parameter, gradient, saliency and state, and cuts the tensors into
BLOCK-element chunks; program k reads chunk k's (tensor, offset) from the table and updates
those elements. The parameters stay where the model keeps them (no flat-buffer re-pointing,
which would break user code that holds parameter references or sets grads to None); the
table costs one small host-to-device copy per step.

Semantics (../shared/METHOD.md), for each coordinate with saliency w > 0:
    SGD:   d = g + wd p;  buf = mu buf + d;  u = d + mu buf (Nesterov) or buf;  p -= lr w u
    AdamW: p *= 1 - lr wd w;  m += (1 - b1)(g - m);  v = b2 v + (1 - b2) g^2;
           p -= (lr / (1 - b1^k)) w m / (sqrt(v) / sqrt(1 - b2^k) + eps)
Coordinates with w == 0 are masked out of every store: parameter and state stay bit-identical.
Saliency storage (constexpr SALIENCY): "bool" (1 byte, hard), "float32" or "bfloat16" (soft).
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

SALIENCY_KINDS = {torch.bool: "bool", torch.float32: "float32", torch.bfloat16: "bfloat16"}


@triton.jit
def _saliency(ptr, offsets, in_range, SALIENCY: tl.constexpr):
    """Saliency of the chunk's coordinates as fp32 (0 outside the tensor)."""
    if SALIENCY == "bool":
        return tl.load(ptr.to(tl.pointer_type(tl.int8)) + offsets, mask=in_range, other=0).to(tl.float32)
    elif SALIENCY == "bfloat16":
        return tl.load(ptr.to(tl.pointer_type(tl.bfloat16)) + offsets, mask=in_range, other=0.0).to(tl.float32)
    else:
        return tl.load(ptr.to(tl.pointer_type(tl.float32)) + offsets, mask=in_range, other=0.0)


@triton.jit
def _chunk(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, BLOCK: tl.constexpr, FIELDS: tl.constexpr):
    chunk = tl.program_id(0)
    tensor = tl.load(CHUNK_TENSOR + chunk)
    offsets = tl.load(CHUNK_START + chunk) + tl.arange(0, BLOCK)
    in_range = offsets < tl.load(NUMEL + tensor)
    return tensor, offsets, in_range, TABLE + tensor * FIELDS


@triton.jit
def _masked_sgd_kernel(
    TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, lr, momentum, weight_decay,
    SALIENCY: tl.constexpr, HAS_MOMENTUM: tl.constexpr, NESTEROV: tl.constexpr, BLOCK: tl.constexpr,
):
    # table row: param, grad, saliency, momentum buffer
    tensor, offsets, in_range, row = _chunk(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, BLOCK, 4)
    param = tl.load(row + 0).to(tl.pointer_type(tl.float32))
    grad = tl.load(row + 1).to(tl.pointer_type(tl.float32))
    w = _saliency(tl.load(row + 2), offsets, in_range, SALIENCY)
    active = in_range & (w > 0)
    p = tl.load(param + offsets, mask=active, other=0.0)
    d = tl.load(grad + offsets, mask=active, other=0.0) + weight_decay * p
    update = d
    if HAS_MOMENTUM:
        buf_ptr = tl.load(row + 3).to(tl.pointer_type(tl.float32))
        buf = momentum * tl.load(buf_ptr + offsets, mask=active, other=0.0) + d
        tl.store(buf_ptr + offsets, buf, mask=active)
        if NESTEROV:
            update = d + momentum * buf
        else:
            update = buf
    tl.store(param + offsets, p - lr * (w * update), mask=active)


@triton.jit
def _masked_adamw_kernel(
    TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, STEP_SIZE, BC2_SQRT, decay, one_minus_beta1, beta2, one_minus_beta2,
    eps, SALIENCY: tl.constexpr, BLOCK: tl.constexpr,
):
    # decay = lr * weight_decay and 1 - beta come from the host in double precision, as in
    # torch.optim: in fp32, 1 - 0.9999 is off by 1.7e-4 relative
    # table row: param, grad, saliency, exp_avg, exp_avg_sq
    tensor, offsets, in_range, row = _chunk(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, BLOCK, 5)
    param = tl.load(row + 0).to(tl.pointer_type(tl.float32))
    grad = tl.load(row + 1).to(tl.pointer_type(tl.float32))
    w = _saliency(tl.load(row + 2), offsets, in_range, SALIENCY)
    m_ptr = tl.load(row + 3).to(tl.pointer_type(tl.float32))
    v_ptr = tl.load(row + 4).to(tl.pointer_type(tl.float32))
    active = in_range & (w > 0)
    g = tl.load(grad + offsets, mask=active, other=0.0)
    p = tl.load(param + offsets, mask=active, other=0.0) * (1.0 - decay * w)
    m = tl.load(m_ptr + offsets, mask=active, other=0.0)
    m = m + one_minus_beta1 * (g - m)
    v = beta2 * tl.load(v_ptr + offsets, mask=active, other=0.0) + one_minus_beta2 * g * g
    denom = tl.sqrt(v) / tl.load(BC2_SQRT + tensor) + eps
    tl.store(m_ptr + offsets, m, mask=active)
    tl.store(v_ptr + offsets, v, mask=active)
    tl.store(param + offsets, p - tl.load(STEP_SIZE + tensor) * (w * (m / denom)), mask=active)


def _block() -> int:
    return 8192 if os.environ.get("TRITON_INTERPRET") == "1" else 2048


def _check(params, grads, saliencies, states):
    kinds = {SALIENCY_KINDS.get(w.dtype) for w in saliencies}
    if None in kinds or len(kinds) != 1:
        raise TypeError(f"the triton masked step takes one saliency dtype per group among {list(SALIENCY_KINDS)}, "
                        f"got {sorted({str(w.dtype) for w in saliencies})}")
    for i, tensors in enumerate(zip(params, grads, saliencies, *states)):
        p = tensors[0]
        if p.dtype != torch.float32:
            raise TypeError(f"the triton masked step supports float32 parameters, parameter {i} is {p.dtype}")
        for t in tensors:
            assert t.is_contiguous() and t.shape == p.shape and t.device == p.device, f"tensor {i}: layout mismatch"
    return kinds.pop()


def _chunk_table(params, fields, block):
    """(pointer table (T, F) int64, chunk -> tensor, chunk -> start, numel per tensor), on device."""
    device = params[0].device
    numels = [p.numel() for p in params]
    chunk_tensor = [i for i, n in enumerate(numels) for _ in range(triton.cdiv(n, block))]
    chunk_start = [s for n in numels for s in range(0, n, block)]
    table = torch.tensor([[t.data_ptr() for t in row] for row in fields], dtype=torch.int64)
    as_device = lambda values, dtype: torch.tensor(values, dtype=dtype).to(device, non_blocking=True)  # noqa: E731
    return (table.to(device, non_blocking=True), as_device(chunk_tensor, torch.int32),
            as_device(chunk_start, torch.int64), as_device(numels, torch.int64), len(chunk_tensor))


def _contiguous(tensors):
    out = [t if t.is_contiguous() else t.contiguous() for t in tensors]
    return out, [(a, b) for a, b in zip(tensors, out) if a is not b]


def masked_sgd_triton(params, grads, saliencies, buffers, *, lr, momentum, weight_decay, nesterov):
    """One launch for the whole list; returns the momentum buffers (None without momentum)."""
    if momentum != 0:
        buffers = [torch.zeros_like(p, memory_format=torch.contiguous_format) if b is None else b
                   for p, b in zip(params, buffers)]
    work, copied = _contiguous(list(params))
    grads, _ = _contiguous(list(grads))
    saliencies, _ = _contiguous(list(saliencies))
    kind = _check(work, grads, saliencies, [buffers] if momentum != 0 else [])
    block = _block()
    state_column = buffers if momentum != 0 else work
    table, chunk_tensor, chunk_start, numel, chunks = _chunk_table(
        work, list(zip(work, grads, saliencies, state_column)), block)
    _masked_sgd_kernel[(chunks,)](table, chunk_tensor, chunk_start, numel, lr, momentum, weight_decay,
                                  SALIENCY=kind, HAS_MOMENTUM=momentum != 0, NESTEROV=nesterov, BLOCK=block)
    for original, new in copied:
        original.copy_(new)
    return buffers if momentum != 0 else [None] * len(params)


def masked_adamw_triton(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps,
                        weight_decay):
    """One launch for the whole list, in place; ``steps`` are the per-tensor 1-based counts."""
    work, copied = _contiguous(list(params))
    grads, _ = _contiguous(list(grads))
    saliencies, _ = _contiguous(list(saliencies))
    kind = _check(work, grads, saliencies, [exp_avgs, exp_avg_sqs])
    block = _block()
    table, chunk_tensor, chunk_start, numel, chunks = _chunk_table(
        work, list(zip(work, grads, saliencies, exp_avgs, exp_avg_sqs)), block)
    device = work[0].device
    step_size = torch.tensor([lr / (1 - beta1**k) for k in steps], dtype=torch.float32).to(device, non_blocking=True)
    bc2_sqrt = torch.tensor([(1 - beta2**k) ** 0.5 for k in steps], dtype=torch.float32).to(device, non_blocking=True)
    _masked_adamw_kernel[(chunks,)](table, chunk_tensor, chunk_start, numel, step_size, bc2_sqrt, lr * weight_decay,
                                    1 - beta1, beta2, 1 - beta2, eps, SALIENCY=kind, BLOCK=block)
    for original, new in copied:
        original.copy_(new)
