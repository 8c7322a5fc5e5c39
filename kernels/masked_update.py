r"""Saliency-masked SGD and AdamW steps in Triton: one launch per step for a whole group.

Multi-tensor apply over a pointer table (``multi_tensor.py``): each table row holds a tensor's
parameter, gradient, saliency and state addresses. The parameters stay where the model keeps
them (no flat-buffer re-pointing, which would break user code that holds parameter references
or sets grads to None); the table costs one small asynchronous host-to-device copy per step.

The update is the one of ``reference.masked_sgd_step_ref`` / ``masked_adamw_step_ref`` (the
formulas: docs/method.md). Coordinates with w == 0 keep parameter and state bit-identical:
every chunk is loaded whole and they are stored back unchanged, so that full chunks need no
masks (a scattered mask touches almost every 32-byte sector anyway).
Saliency storage (constexpr SALIENCY): "bool" (1 byte, hard), "bits" (hard, packed 1 bit per
coordinate, least significant bit first), "uint8" (soft, q / 255), "float32" or "bfloat16" (soft).
Parameters and gradients are fp32, bf16 or fp16 (constexpr PARAM); optimizer state is always
fp32 (``precision.compute_dtype``), and 16-bit parameters are rounded once per step when stored.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..precision import compute_dtype
from ..backends import triton_interpreted as interpreted
from . import TARGET_ARCHS
from .multi_tensor import chunk_of, chunk_table, contiguous, to_device

DENSE_SALIENCY_KINDS = {torch.bool: "bool", torch.float32: "float32", torch.bfloat16: "bfloat16"}
PARAM_KINDS = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


@triton.jit
def _at(ptr, offsets, ALIGNED: tl.constexpr):
    """``ptr + offsets``, declared 16-byte aligned when ALIGNED (the launcher checked every
    address; chunks start at multiples of BLOCK): full chunks then use 128-bit accesses."""
    if ALIGNED:
        return tl.multiple_of(ptr + offsets, 16)
    else:
        return ptr + offsets


@triton.jit
def _load(pointers, in_range, FULL: tl.constexpr):
    """Load a chunk: unmasked when FULL (the chunk lies inside its tensor), else 0 outside."""
    if FULL:
        return tl.load(pointers)
    else:
        return tl.load(pointers, mask=in_range, other=0)


@triton.jit
def _store(pointers, value, in_range, FULL: tl.constexpr):
    if FULL:
        tl.store(pointers, value)
    else:
        tl.store(pointers, value, mask=in_range)


@triton.jit
def _saliency(address, offsets, in_range, SALIENCY: tl.constexpr, ALIGNED: tl.constexpr, FULL: tl.constexpr):
    """Saliency of the chunk's coordinates as fp32 (0 outside the tensor)."""
    if SALIENCY == "bool":
        return _load(_at(address.to(tl.pointer_type(tl.int8)), offsets, ALIGNED), in_range, FULL).to(tl.float32)
    elif SALIENCY == "bits":
        byte = _load(address.to(tl.pointer_type(tl.uint8)) + offsets // 8, in_range, FULL).to(tl.int32)
        return ((byte >> (offsets % 8).to(tl.int32)) & 1).to(tl.float32)
    elif SALIENCY == "uint8":
        q = _load(_at(address.to(tl.pointer_type(tl.uint8)), offsets, ALIGNED), in_range, FULL)
        return tl.div_rn(q.to(tl.float32), 255.0)
    elif SALIENCY == "bfloat16":
        return _load(_at(address.to(tl.pointer_type(tl.bfloat16)), offsets, ALIGNED), in_range, FULL).to(tl.float32)
    else:
        return _load(_at(address.to(tl.pointer_type(tl.float32)), offsets, ALIGNED), in_range, FULL)


@triton.jit
def _store_param(ptr, offsets, value, old, active, in_range, PARAM: tl.constexpr, ALIGNED: tl.constexpr,
                 FULL: tl.constexpr):
    """Store fp32 ``value`` where ``active``, and the loaded ``old`` bits elsewhere, as the
    parameter dtype. bf16 is rounded to nearest-even by hand, so compiled and interpreted
    kernels agree (the interpreter truncates in ``.to(tl.bfloat16)``)."""
    if PARAM == "bfloat16":
        bits = value.to(tl.uint32, bitcast=True)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).to(tl.uint16)
        kept = tl.where(active, rounded, old.to(tl.uint16, bitcast=True))
        _store(_at(ptr.to(tl.pointer_type(tl.uint16)), offsets, ALIGNED), kept, in_range, FULL)
    else:
        _store(_at(ptr, offsets, ALIGNED), tl.where(active, value.to(ptr.dtype.element_ty), old), in_range, FULL)


@triton.jit
def _param_pointer(address, PARAM: tl.constexpr):
    if PARAM == "bfloat16":
        return address.to(tl.pointer_type(tl.bfloat16))
    elif PARAM == "float16":
        return address.to(tl.pointer_type(tl.float16))
    else:
        return address.to(tl.pointer_type(tl.float32))


@triton.jit
def _sgd_update(row, offsets, in_range, lr, momentum, weight_decay, SALIENCY: tl.constexpr, PARAM: tl.constexpr,
                HAS_MOMENTUM: tl.constexpr, NESTEROV: tl.constexpr, ALIGNED: tl.constexpr, FULL: tl.constexpr):
    """The masked SGD step on one chunk (FULL: no masks, the chunk lies inside its tensor)."""
    param = _param_pointer(tl.load(row + 0), PARAM)
    grad = _param_pointer(tl.load(row + 1), PARAM)
    w = _saliency(tl.load(row + 2), offsets, in_range, SALIENCY, ALIGNED, FULL)
    active = w > 0
    old = _load(_at(param, offsets, ALIGNED), in_range, FULL)
    p = old.to(tl.float32)
    d = _load(_at(grad, offsets, ALIGNED), in_range, FULL).to(tl.float32) + weight_decay * p
    update = d
    if HAS_MOMENTUM:
        buf_ptr = tl.load(row + 3).to(tl.pointer_type(tl.float32))
        old_buf = _load(_at(buf_ptr, offsets, ALIGNED), in_range, FULL)
        buf = momentum * old_buf + d
        _store(_at(buf_ptr, offsets, ALIGNED), tl.where(active, buf, old_buf), in_range, FULL)
        if NESTEROV:
            update = d + momentum * buf
        else:
            update = buf
    _store_param(param, offsets, p - lr * (w * update), old, active, in_range, PARAM, ALIGNED, FULL)


@triton.jit
def _masked_sgd_kernel(
    TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, lr, momentum, weight_decay,
    SALIENCY: tl.constexpr, PARAM: tl.constexpr, HAS_MOMENTUM: tl.constexpr, NESTEROV: tl.constexpr,
    ALIGNED: tl.constexpr, BLOCK: tl.constexpr,
):
    # table row: param, grad, saliency, momentum buffer
    tensor, offsets, in_range, row = chunk_of(TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, tl.program_id(0), BLOCK, 4)
    if tl.load(CHUNK_START + tl.program_id(0)) + BLOCK <= tl.load(NUMEL + tensor):
        _sgd_update(row, offsets, in_range, lr, momentum, weight_decay, SALIENCY, PARAM, HAS_MOMENTUM, NESTEROV,
                    ALIGNED, True)
    else:
        _sgd_update(row, offsets, in_range, lr, momentum, weight_decay, SALIENCY, PARAM, HAS_MOMENTUM, NESTEROV,
                    ALIGNED, False)


@triton.jit
def _adamw_update(row, offsets, in_range, step_size, bc2_sqrt, decay, one_minus_beta1, beta2, one_minus_beta2, eps,
                  SALIENCY: tl.constexpr, PARAM: tl.constexpr, ALIGNED: tl.constexpr, FULL: tl.constexpr):
    """The masked AdamW step on one chunk (FULL: no masks, the chunk lies inside its tensor)."""
    param = _param_pointer(tl.load(row + 0), PARAM)
    grad = _param_pointer(tl.load(row + 1), PARAM)
    w = _saliency(tl.load(row + 2), offsets, in_range, SALIENCY, ALIGNED, FULL)
    m_ptr = tl.load(row + 3).to(tl.pointer_type(tl.float32))
    v_ptr = tl.load(row + 4).to(tl.pointer_type(tl.float32))
    active = w > 0
    g = _load(_at(grad, offsets, ALIGNED), in_range, FULL).to(tl.float32)
    old = _load(_at(param, offsets, ALIGNED), in_range, FULL)
    old_m = _load(_at(m_ptr, offsets, ALIGNED), in_range, FULL)
    old_v = _load(_at(v_ptr, offsets, ALIGNED), in_range, FULL)
    p = old.to(tl.float32) * (1.0 - decay * w)
    m = old_m + one_minus_beta1 * (g - old_m)
    v = beta2 * old_v + one_minus_beta2 * g * g
    denom = tl.div_rn(tl.sqrt_rn(v), bc2_sqrt) + eps  # IEEE, as torch.optim
    _store(_at(m_ptr, offsets, ALIGNED), tl.where(active, m, old_m), in_range, FULL)
    _store(_at(v_ptr, offsets, ALIGNED), tl.where(active, v, old_v), in_range, FULL)
    _store_param(param, offsets, p - step_size * (w * tl.div_rn(m, denom)), old, active, in_range, PARAM, ALIGNED, FULL)


@triton.jit
def _masked_adamw_kernel(
    TABLE, CHUNK_TENSOR, CHUNK_START, NUMEL, STEP_SIZE, BC2_SQRT, step_size, bc2_sqrt, decay, one_minus_beta1, beta2,
    one_minus_beta2, eps, SALIENCY: tl.constexpr, PARAM: tl.constexpr, UNIFORM_STEP: tl.constexpr,
    ALIGNED: tl.constexpr, BLOCK: tl.constexpr,
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
    if tl.load(CHUNK_START + tl.program_id(0)) + BLOCK <= tl.load(NUMEL + tensor):
        _adamw_update(row, offsets, in_range, step_size, bc2_sqrt, decay, one_minus_beta1, beta2, one_minus_beta2,
                      eps, SALIENCY, PARAM, ALIGNED, True)
    else:
        _adamw_update(row, offsets, in_range, step_size, bc2_sqrt, decay, one_minus_beta1, beta2, one_minus_beta2,
                      eps, SALIENCY, PARAM, ALIGNED, False)


@dataclass(frozen=True)
class Launch:
    block: int  # coordinates per program
    num_warps: int


# 4 coordinates per thread: one 128-bit access per fp32 tensor, and at most MAX_REGISTERS
# registers (at least 4 resident blocks of 128 threads per SM), which the compile gate checks;
# under the interpreter, fewer and larger programs are cheaper
GPU_LAUNCH = Launch(block=512, num_warps=4)
MAX_REGISTERS = 128
INTERPRETER_LAUNCH = Launch(block=8192, num_warps=4)
SGD_VARIANTS = ((False, False), (True, False), (True, True))  # (HAS_MOMENTUM, NESTEROV)


def _launch() -> Launch:
    return INTERPRETER_LAUNCH if interpreted() else GPU_LAUNCH


def _aligned(rows) -> bool:
    """Every address 16-byte aligned: full chunks may then use 128-bit accesses."""
    return all(t.data_ptr() % 16 == 0 for row in rows for t in row)


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
            assert s.dtype == compute_dtype(p.dtype) and s.shape == p.shape and s.is_contiguous(), f"state of tensor {i}"
    return kinds.pop()


def _state_like(p):
    return torch.zeros(p.shape, dtype=compute_dtype(p.dtype), device=p.device)  # fp32 for every PARAM kind


def masked_sgd_triton(params, grads, saliencies, buffers, *, lr, momentum, weight_decay, nesterov, storage):
    """One launch for the whole list; returns the (fp32) momentum buffers (None without momentum)."""
    if momentum != 0:
        buffers = [_state_like(p) if b is None else b for p, b in zip(params, buffers)]
    work, copied = contiguous(list(params))
    grads, _ = contiguous(list(grads))
    saliencies, _ = contiguous(list(saliencies))
    kind = _saliency_kind(saliencies, storage)
    param_kind = _param_kind(work, grads, [buffers] if momentum != 0 else [])
    launch = _launch()
    rows = list(zip(work, grads, saliencies, buffers if momentum != 0 else work))
    table, chunk_tensor, chunk_start, numel, chunks = chunk_table(work, rows, launch.block)
    _masked_sgd_kernel[(chunks,)](table, chunk_tensor, chunk_start, numel, lr, momentum, weight_decay,
                                  SALIENCY=kind, PARAM=param_kind, HAS_MOMENTUM=momentum != 0, NESTEROV=nesterov,
                                  ALIGNED=_aligned(rows), BLOCK=launch.block, num_warps=launch.num_warps)
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
    launch = _launch()
    rows = list(zip(work, grads, saliencies, exp_avgs, exp_avg_sqs))
    table, chunk_tensor, chunk_start, numel, chunks = chunk_table(work, rows, launch.block)
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
                                    SALIENCY=kind, PARAM=param_kind, UNIFORM_STEP=uniform, ALIGNED=_aligned(rows),
                                    BLOCK=launch.block, num_warps=launch.num_warps)
    for original, new in copied:
        original.copy_(new)


SALIENCY_KINDS = (*DENSE_SALIENCY_KINDS.values(), "bits", "uint8")


def compile_specs():
    """Every variant the launchers can choose, at ``GPU_LAUNCH``, for the compile gate. Spills
    fail every configuration here (no tl.dot); the quick subset is sm_90 with aligned tensors."""
    from .aot import CompileSpec, kernel_types

    specs = []
    for arch, saliency, param, aligned in itertools.product(TARGET_ARCHS, SALIENCY_KINDS, PARAM_KINDS.values(),
                                                            (True, False)):
        common = dict(SALIENCY=saliency, PARAM=param, ALIGNED=aligned, BLOCK=GPU_LAUNCH.block)
        name = f"{saliency} saliency, {param}{'' if aligned else ', unaligned'}"
        variants = [(_masked_adamw_kernel, f"adamw {name}{'' if uniform else ', per-tensor steps'}",
                     dict(common, UNIFORM_STEP=uniform)) for uniform in (True, False)]
        variants += [(_masked_sgd_kernel,
                      f"sgd {name}{', momentum' if momentum else ''}{', nesterov' if nesterov else ''}",
                      dict(common, HAS_MOMENTUM=momentum, NESTEROV=nesterov)) for momentum, nesterov in SGD_VARIANTS]
        for kernel, label, constexprs in variants:
            types, divisible = kernel_types(kernel, element="fp32")
            specs.append(CompileSpec(kernel, label, types, constexprs, GPU_LAUNCH.num_warps, 1, arch, no_spills=True,
                                     max_registers=MAX_REGISTERS,
                                     quick=arch == 90 and aligned and "per-tensor" not in label, divisible=divisible))
    return specs
