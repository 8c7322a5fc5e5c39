r"""Saliency-masked SGD and AdamW steps in Triton: one launch per step for a whole group.

Multi-tensor apply over a pointer table (``multi_tensor.py``): each table row holds a tensor's
parameter, gradient, saliency and state addresses. The parameters stay where the model keeps
them (no flat-buffer re-pointing, which would break user code that holds parameter references
or sets grads to None); the table costs one small asynchronous host-to-device copy per step.

Semantics (../shared/METHOD.md), for each coordinate with saliency w > 0:
    SGD:   d = g + wd p;  buf = mu buf + d;  u = d + mu buf (Nesterov) or buf;  p -= lr w u
    AdamW: p *= 1 - lr wd w;  m += (1 - b1)(g - m);  v = b2 v + (1 - b2) g^2;
           p -= (lr / (1 - b1^k)) w m / (sqrt(v) / sqrt(1 - b2^k) + eps)
Coordinates with w == 0 are masked out of every store: parameter and state stay bit-identical.
Saliency storage (constexpr SALIENCY): "bool" (1 byte, hard), "bits" (hard, packed 1 bit per
coordinate, least significant bit first), "uint8" (soft, q / 255), "float32" or "bfloat16" (soft).
Parameters and gradients are fp32, bf16 or fp16 (constexpr PARAM); optimizer state is always
fp32, and 16-bit parameters are rounded once per step when stored.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .multi_tensor import chunk_of, chunk_table, contiguous, interpreted, to_device

DENSE_SALIENCY_KINDS = {torch.bool: "bool", torch.float32: "float32", torch.bfloat16: "bfloat16"}
PARAM_KINDS = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


@triton.jit
def _saliency(ptr, offsets, in_range, SALIENCY: tl.constexpr):
    """Saliency of the chunk's coordinates as fp32 (0 outside the tensor)."""
    if SALIENCY == "bool":
        return tl.load(ptr.to(tl.pointer_type(tl.int8)) + offsets, mask=in_range, other=0).to(tl.float32)
    elif SALIENCY == "bits":
        byte = tl.load(ptr.to(tl.pointer_type(tl.uint8)) + offsets // 8, mask=in_range, other=0).to(tl.int32)
        return ((byte >> (offsets % 8).to(tl.int32)) & 1).to(tl.float32)
    elif SALIENCY == "uint8":
        return tl.div_rn(tl.load(ptr.to(tl.pointer_type(tl.uint8)) + offsets, mask=in_range, other=0).to(tl.float32),
                         255.0)
    elif SALIENCY == "bfloat16":
        return tl.load(ptr.to(tl.pointer_type(tl.bfloat16)) + offsets, mask=in_range, other=0.0).to(tl.float32)
    else:
        return tl.load(ptr.to(tl.pointer_type(tl.float32)) + offsets, mask=in_range, other=0.0)


@triton.jit
def _store_param(ptr, offsets, value, mask, PARAM: tl.constexpr):
    """Store fp32 ``value`` as the parameter dtype. bf16 is rounded to nearest-even by hand, so
    compiled and interpreted kernels agree (the interpreter truncates in ``.to(tl.bfloat16)``)."""
    if PARAM == "bfloat16":
        bits = value.to(tl.uint32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        tl.store(ptr.to(tl.pointer_type(tl.uint16)) + offsets, rounded.to(tl.uint16), mask=mask)
    else:
        tl.store(ptr + offsets, value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _param_pointer(address, PARAM: tl.constexpr):
    if PARAM == "bfloat16":
        return address.to(tl.pointer_type(tl.bfloat16))
    elif PARAM == "float16":
        return address.to(tl.pointer_type(tl.float16))
    else:
        return address.to(tl.pointer_type(tl.float32))


@triton.jit
def _masked_sgd_kernel(
    TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, lr, momentum, weight_decay,
    SALIENCY: tl.constexpr, PARAM: tl.constexpr, HAS_MOMENTUM: tl.constexpr, NESTEROV: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # table row: param, grad, saliency, momentum buffer
    tensor, offsets, in_range, row = chunk_of(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, tl.program_id(0), BLOCK, 4)
    param = _param_pointer(tl.load(row + 0), PARAM)
    grad = _param_pointer(tl.load(row + 1), PARAM)
    w = _saliency(tl.load(row + 2), offsets, in_range, SALIENCY)
    active = in_range & (w > 0)
    p = tl.load(param + offsets, mask=active, other=0.0).to(tl.float32)
    d = tl.load(grad + offsets, mask=active, other=0.0).to(tl.float32) + weight_decay * p
    update = d
    if HAS_MOMENTUM:
        buf_ptr = tl.load(row + 3).to(tl.pointer_type(tl.float32))
        buf = momentum * tl.load(buf_ptr + offsets, mask=active, other=0.0) + d
        tl.store(buf_ptr + offsets, buf, mask=active)
        if NESTEROV:
            update = d + momentum * buf
        else:
            update = buf
    _store_param(param, offsets, p - lr * (w * update), active, PARAM)


@triton.jit
def _masked_adamw_kernel(
    TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, STEP_SIZE, BC2_SQRT, step_size, bc2_sqrt, decay, one_minus_beta1, beta2,
    one_minus_beta2, eps, SALIENCY: tl.constexpr, PARAM: tl.constexpr, UNIFORM_STEP: tl.constexpr, BLOCK: tl.constexpr,
):
    # decay = lr * weight_decay and 1 - beta come from the host in double precision, as in
    # torch.optim: in fp32, 1 - 0.9999 is off by 1.7e-4 relative
    # the bias corrections are the scalars step_size, bc2_sqrt when every tensor has taken the
    # same number of steps, else per tensor from STEP_SIZE, BC2_SQRT
    # table row: param, grad, saliency, exp_avg, exp_avg_sq
    tensor, offsets, in_range, row = chunk_of(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, tl.program_id(0), BLOCK, 5)
    if not UNIFORM_STEP:
        step_size = tl.load(STEP_SIZE + tensor)
        bc2_sqrt = tl.load(BC2_SQRT + tensor)
    param = _param_pointer(tl.load(row + 0), PARAM)
    grad = _param_pointer(tl.load(row + 1), PARAM)
    w = _saliency(tl.load(row + 2), offsets, in_range, SALIENCY)
    m_ptr = tl.load(row + 3).to(tl.pointer_type(tl.float32))
    v_ptr = tl.load(row + 4).to(tl.pointer_type(tl.float32))
    active = in_range & (w > 0)
    g = tl.load(grad + offsets, mask=active, other=0.0).to(tl.float32)
    p = tl.load(param + offsets, mask=active, other=0.0).to(tl.float32) * (1.0 - decay * w)
    m = tl.load(m_ptr + offsets, mask=active, other=0.0)
    m = m + one_minus_beta1 * (g - m)
    v = beta2 * tl.load(v_ptr + offsets, mask=active, other=0.0) + one_minus_beta2 * g * g
    denom = tl.div_rn(tl.sqrt_rn(v), bc2_sqrt) + eps  # IEEE, as torch.optim
    tl.store(m_ptr + offsets, m, mask=active)
    tl.store(v_ptr + offsets, v, mask=active)
    stepped = p - step_size * (w * tl.div_rn(m, denom))
    _store_param(param, offsets, stepped, active, PARAM)


def _block() -> int:
    return 8192 if interpreted() else 2048


def _saliency_kind(saliencies, storage: str) -> str:
    if storage != "dense":
        return storage
    kinds = {DENSE_SALIENCY_KINDS.get(w.dtype) for w in saliencies}
    if None in kinds or len(kinds) != 1:
        raise TypeError(f"the triton masked step takes one dense saliency dtype per group among "
                        f"{list(DENSE_SALIENCY_KINDS)}, got {sorted({str(w.dtype) for w in saliencies})}")
    return kinds.pop()


def _param_kind(params, grads, states) -> str:
    """Launcher asserts: one parameter dtype per group, grads alike, fp32 contiguous state."""
    kinds = {PARAM_KINDS.get(p.dtype) for p in params}
    if None in kinds or len(kinds) != 1:
        raise TypeError(f"the triton masked step takes one parameter dtype per group among {list(PARAM_KINDS)}, "
                        f"got {sorted({str(p.dtype) for p in params})}")
    for i, (p, g) in enumerate(zip(params, grads)):
        assert g.dtype == p.dtype and g.shape == p.shape and g.is_contiguous() and p.is_contiguous(), f"tensor {i}"
        for state in states:
            s = state[i]
            assert s.dtype == torch.float32 and s.shape == p.shape and s.is_contiguous(), f"state of tensor {i}"
    return kinds.pop()


def _state_like(p):
    return torch.zeros(p.shape, dtype=torch.float32, device=p.device)


def masked_sgd_triton(params, grads, saliencies, buffers, *, lr, momentum, weight_decay, nesterov, storage):
    """One launch for the whole list; returns the (fp32) momentum buffers (None without momentum)."""
    if momentum != 0:
        buffers = [_state_like(p) if b is None else b for p, b in zip(params, buffers)]
    work, copied = contiguous(list(params))
    grads, _ = contiguous(list(grads))
    saliencies, _ = contiguous(list(saliencies))
    kind = _saliency_kind(saliencies, storage)
    param_kind = _param_kind(work, grads, [buffers] if momentum != 0 else [])
    block = _block()
    state_column = buffers if momentum != 0 else work
    table, chunk_tensor, chunk_start, numel, chunks = chunk_table(
        work, list(zip(work, grads, saliencies, state_column)), block)
    _masked_sgd_kernel[(chunks,)](table, chunk_tensor, chunk_start, numel, lr, momentum, weight_decay,
                                  SALIENCY=kind, PARAM=param_kind, HAS_MOMENTUM=momentum != 0, NESTEROV=nesterov,
                                  BLOCK=block)
    for original, new in copied:
        original.copy_(new)
    return buffers if momentum != 0 else [None] * len(params)


def masked_adamw_triton(params, grads, saliencies, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps,
                        weight_decay, storage):
    """One launch for the whole list, in place; ``steps`` are the per-tensor 1-based counts."""
    work, copied = contiguous(list(params))
    grads, _ = contiguous(list(grads))
    saliencies, _ = contiguous(list(saliencies))
    kind = _saliency_kind(saliencies, storage)
    param_kind = _param_kind(work, grads, [exp_avgs, exp_avg_sqs])
    block = _block()
    table, chunk_tensor, chunk_start, numel, chunks = chunk_table(
        work, list(zip(work, grads, saliencies, exp_avgs, exp_avg_sqs)), block)
    step_sizes = [lr / (1 - beta1**k) for k in steps]
    bc2_sqrts = [(1 - beta2**k) ** 0.5 for k in steps]
    uniform = len(set(steps)) == 1  # the usual case: no per-step host-to-device copy
    if uniform:
        step_size_table = bc2_table = numel  # unused pointers
    else:
        device = work[0].device
        step_size_table = to_device(step_sizes, torch.float32, device)
        bc2_table = to_device(bc2_sqrts, torch.float32, device)
    _masked_adamw_kernel[(chunks,)](table, chunk_tensor, chunk_start, numel, step_size_table, bc2_table,
                                    step_sizes[0], bc2_sqrts[0], lr * weight_decay, 1 - beta1, beta2, 1 - beta2, eps,
                                    SALIENCY=kind, PARAM=param_kind, UNIFORM_STEP=uniform, BLOCK=block)
    for original, new in copied:
        original.copy_(new)
