r"""Fused scaled InfoNCE in Triton: forward and backward without the N x M similarity matrix.

Inputs A (N, D) anchors, P (N, D) positives, R (M, D) negatives; with normalisation
x_hat = x / max(||x||, 1e-12) (otherwise x_hat = x), tau the temperature:

    l_i+ = <a_i, p_i> / tau,   l_ij = <a_i, r_j> / tau,   lse_i = log(e^{l_i+} + sum_j e^{l_ij})
    L    = 1/N sum_i (lse_i - l_i+)

Forward: one program per block of BLOCK_N anchors walks R in BLOCK_M tiles with an online
log-sum-exp; it stores lse_i and the row loss (O(N) extra memory).

Backward: with c = dL_out / N, pi_ij = exp(l_ij - lse_i), the logit gradients are
g_ij = c pi_ij and g_i+ = c (pi_i+ - 1). Through the normalisation, using
<x_hat, dx_hat> = sum of g * logit over the row (a scalar per row, no extra pass):

    dA_i = inv_a/tau (sum_j g_ij inv_r_j r_j + g_i+ inv_p p_i) - a_i inv_a^2 (sum_j g_ij l_ij + g_i+ l_i+)
    dP_i = g_i+ (inv_p inv_a / tau a_i - inv_p^2 l_i+ p_i)
    dR_j = inv_r/tau sum_i g_ij inv_a_i a_i - r_j inv_r^2 sum_i g_ij l_ij

(without normalisation every inv_* is 1 and the second terms vanish). One launch does both:
programs [0, n_anchor_blocks) own anchor blocks and write dA, dP; the remaining programs own
R tiles and write dR. Each recomputes its tiles; nothing is accumulated across programs, so
there are no atomics and the result is deterministic. Extra memory: lse (N) and row losses (N).

fp16/bf16 inputs go through tl.dot with fp32 accumulation; fp32 inputs use TF32 when
``torch.get_float32_matmul_precision()`` allows it, IEEE otherwise. D is held whole in a block
(BLOCK_D = next power of two >= D, up to 2048), with smaller row blocks for large D.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

MAX_FEATURES = 2048


@triton.jit
def _row_inverse_norm(x, NORMALIZE: tl.constexpr):
    """1 / max(||x_row||, eps) for a (rows, BLOCK_D) fp32 tile, or ones."""
    if NORMALIZE:
        return 1.0 / tl.maximum(tl.sqrt(tl.sum(x * x, axis=1)), 1e-12)
    else:
        return tl.full((x.shape[0],), 1.0, tl.float32)


@triton.jit
def _anchor_block(A, P, rows, cols, row_ok, col_ok, stride_a, stride_p, inv_tau, NORMALIZE: tl.constexpr):
    """Load a block of anchors and positives; return (a, a fp32, p fp32, inv_a, inv_p, l_i+)."""
    tile_ok = row_ok[:, None] & col_ok[None, :]
    a = tl.load(A + rows[:, None] * stride_a + cols[None, :], mask=tile_ok, other=0.0)
    p = tl.load(P + rows[:, None] * stride_p + cols[None, :], mask=tile_ok, other=0.0)
    a32, p32 = a.to(tl.float32), p.to(tl.float32)
    inv_a = _row_inverse_norm(a32, NORMALIZE)
    inv_p = _row_inverse_norm(p32, NORMALIZE)
    pos = tl.sum(a32 * p32, axis=1) * inv_a * inv_p * inv_tau
    return a, a32, p32, inv_a, inv_p, pos


@triton.jit
def _infonce_fwd_kernel(
    A, P, R, LSE, ROW_LOSS,
    N, M, D, stride_a, stride_p, stride_r, inv_tau,
    NORMALIZE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_D)
    row_ok = rows < N
    col_ok = cols < D
    a, _, _, inv_a, _, pos = _anchor_block(A, P, rows, cols, row_ok, col_ok, stride_a, stride_p, inv_tau, NORMALIZE)
    row_max = pos
    row_sum = tl.full((BLOCK_N,), 1.0, tl.float32)  # exp(pos - row_max)
    for start in range(0, M, BLOCK_M):
        negs = start + tl.arange(0, BLOCK_M)
        neg_ok = negs < M
        r = tl.load(R + negs[:, None] * stride_r + cols[None, :], mask=neg_ok[:, None] & col_ok[None, :], other=0.0)
        inv_r = _row_inverse_norm(r.to(tl.float32), NORMALIZE)
        logits = tl.dot(a, tl.trans(r), input_precision=PRECISION) * (inv_a * inv_tau)[:, None] * inv_r[None, :]
        logits = tl.where(neg_ok[None, :], logits, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(logits, axis=1))
        row_sum = row_sum * tl.exp(row_max - new_max) + tl.sum(tl.exp(logits - new_max[:, None]), axis=1)
        row_max = new_max
    lse = row_max + tl.log(row_sum)
    tl.store(LSE + rows, lse, mask=row_ok)
    tl.store(ROW_LOSS + rows, lse - pos, mask=row_ok)


@triton.jit
def _logit_gradients(a, r, inv_a, inv_r, lse, row_ok, neg_ok, scale, inv_tau, PRECISION: tl.constexpr):
    """Recompute a (rows, negatives) tile of logits l and their gradients g = c exp(l - lse)."""
    logits = tl.dot(a, tl.trans(r), input_precision=PRECISION) * (inv_a * inv_tau)[:, None] * inv_r[None, :]
    grad_logits = tl.where(row_ok[:, None] & neg_ok[None, :], tl.exp(logits - lse[:, None]) * scale, 0.0)
    return logits, grad_logits


@triton.jit
def _infonce_bwd_kernel(
    A, P, R, LSE, GRAD_OUT, DA, DP, DR,
    N, M, D, stride_a, stride_p, stride_r, inv_tau, num_anchor_blocks,
    NORMALIZE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    scale = tl.load(GRAD_OUT).to(tl.float32) / N  # c = dL_out / N
    if pid < num_anchor_blocks:
        # ---- this program owns anchors [rows]: dA and dP
        rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        tile_ok = row_ok[:, None] & col_ok[None, :]
        a, a32, p32, inv_a, inv_p, pos = _anchor_block(A, P, rows, cols, row_ok, col_ok, stride_a, stride_p, inv_tau,
                                                       NORMALIZE)
        lse = tl.load(LSE + rows, mask=row_ok, other=0.0)
        weighted_negatives = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)  # sum_j g_ij inv_r_j r_j
        projection = tl.zeros((BLOCK_N,), tl.float32)  # sum_j g_ij l_ij
        for start in range(0, M, BLOCK_M):
            negs = start + tl.arange(0, BLOCK_M)
            neg_ok = negs < M
            r = tl.load(R + negs[:, None] * stride_r + cols[None, :], mask=neg_ok[:, None] & col_ok[None, :], other=0.0)
            inv_r = _row_inverse_norm(r.to(tl.float32), NORMALIZE)
            logits, grad_logits = _logit_gradients(a, r, inv_a, inv_r, lse, row_ok, neg_ok, scale, inv_tau, PRECISION)
            weighted_negatives += tl.dot((grad_logits * inv_r[None, :]).to(r.dtype), r, input_precision=PRECISION)
            projection += tl.sum(grad_logits * logits, axis=1)
        grad_pos = scale * (tl.exp(pos - lse) - 1.0)
        grad_a = (inv_a * inv_tau)[:, None] * (weighted_negatives + (grad_pos * inv_p)[:, None] * p32)
        grad_p = grad_pos[:, None] * (inv_p * inv_a * inv_tau)[:, None] * a32
        if NORMALIZE:
            grad_a -= a32 * (inv_a * inv_a * (projection + grad_pos * pos))[:, None]
            grad_p -= p32 * (grad_pos * inv_p * inv_p * pos)[:, None]
        tl.store(DA + rows[:, None] * D + cols[None, :], grad_a.to(DA.dtype.element_ty), mask=tile_ok)
        tl.store(DP + rows[:, None] * D + cols[None, :], grad_p.to(DP.dtype.element_ty), mask=tile_ok)
    else:
        # ---- this program owns negatives [negs]: dR
        negs = (pid - num_anchor_blocks) * BLOCK_M + tl.arange(0, BLOCK_M)
        neg_ok = negs < M
        tile_ok = neg_ok[:, None] & col_ok[None, :]
        r = tl.load(R + negs[:, None] * stride_r + cols[None, :], mask=tile_ok, other=0.0)
        r32 = r.to(tl.float32)
        inv_r = _row_inverse_norm(r32, NORMALIZE)
        weighted_anchors = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)  # sum_i g_ij inv_a_i a_i
        projection = tl.zeros((BLOCK_M,), tl.float32)  # sum_i g_ij l_ij
        for start in range(0, N, BLOCK_N):
            rows = start + tl.arange(0, BLOCK_N)
            row_ok = rows < N
            a = tl.load(A + rows[:, None] * stride_a + cols[None, :], mask=row_ok[:, None] & col_ok[None, :], other=0.0)
            inv_a = _row_inverse_norm(a.to(tl.float32), NORMALIZE)
            lse = tl.load(LSE + rows, mask=row_ok, other=0.0)
            logits, grad_logits = _logit_gradients(a, r, inv_a, inv_r, lse, row_ok, neg_ok, scale, inv_tau, PRECISION)
            weighted_anchors += tl.dot(tl.trans((grad_logits * inv_a[:, None]).to(a.dtype)), a, input_precision=PRECISION)
            projection += tl.sum(grad_logits * logits, axis=0)
        grad_r = (inv_r * inv_tau)[:, None] * weighted_anchors
        if NORMALIZE:
            grad_r -= r32 * (inv_r * inv_r * projection)[:, None]
        tl.store(DR + negs[:, None] * D + cols[None, :], grad_r.to(DR.dtype.element_ty), mask=tile_ok)


def launch_config(n: int, m: int, d: int, dtype: torch.dtype) -> dict:
    """Block sizes from a small table keyed on the feature size (the whole row of D lives in a
    block): tiles shrink as D grows so that a tile pair stays within shared memory. No
    autotuning, so the first call of a run pays no search. Under the interpreter, fewer and
    larger programs are cheaper."""
    block_d = max(16, triton.next_power_of_2(d))
    if os.environ.get("TRITON_INTERPRET") == "1":
        return dict(BLOCK_N=64, BLOCK_M=max(16, min(256, triton.next_power_of_2(m))), BLOCK_D=block_d, num_warps=4)
    half = dtype in (torch.float16, torch.bfloat16)
    if block_d <= 128:
        block_n, block_m = 128, 64
    elif block_d <= 256:
        block_n, block_m = (128, 64) if half else (64, 64)
    elif block_d <= 512:
        block_n, block_m = 64, 32
    else:
        block_n, block_m = 32, 16
    return dict(BLOCK_N=block_n, BLOCK_M=block_m, BLOCK_D=block_d, num_warps=8 if block_n * block_d >= 16384 else 4)


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "ieee"


def _rows_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(1) == 1 else x.contiguous()


class InfoNCETriton(torch.autograd.Function):
    """autograd glue: forward saves only the inputs and lse (N); backward recomputes tiles."""

    @staticmethod
    def forward(ctx, anchors, positives, negatives, temperature: float, normalize: bool):
        a, p, r = (_rows_contiguous(x) for x in (anchors, positives, negatives))
        n, d = a.shape
        m = r.shape[0]
        assert p.shape == (n, d) and r.shape[1] == d, "shapes were validated by infonce_loss"
        assert a.dtype == p.dtype == r.dtype and a.device == p.device == r.device
        if d > MAX_FEATURES:
            raise ValueError(f"the triton infonce kernel supports up to {MAX_FEATURES} features, got {d}")
        config = launch_config(n, m, d, a.dtype)
        lse = torch.empty(n, device=a.device, dtype=torch.float32)
        row_loss = torch.empty(n, device=a.device, dtype=torch.float32)
        precision = _precision(a.dtype)
        _infonce_fwd_kernel[(triton.cdiv(n, config["BLOCK_N"]),)](
            a, p, r, lse, row_loss, n, m, d, a.stride(0), p.stride(0), r.stride(0), 1.0 / temperature,
            NORMALIZE=normalize, PRECISION=precision, **config,
        )
        ctx.save_for_backward(a, p, r, lse)
        ctx.settings = (temperature, normalize, precision, config)
        return (row_loss.sum() / n).to(anchors.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            raise RuntimeError("infonce_loss on the triton backend is not twice differentiable "
                               "(create_graph=True); use backend='torch' for double backward")
        a, p, r, lse = ctx.saved_tensors
        temperature, normalize, precision, config = ctx.settings
        n, d = a.shape
        m = r.shape[0]
        grad_a, grad_p = (torch.empty((n, d), device=a.device, dtype=a.dtype) for _ in range(2))
        grad_r = torch.empty((m, d), device=a.device, dtype=a.dtype)
        anchor_blocks = triton.cdiv(n, config["BLOCK_N"])
        grid = (anchor_blocks + triton.cdiv(m, config["BLOCK_M"]),)
        _infonce_bwd_kernel[grid](
            a, p, r, lse, grad_output.float().contiguous(), grad_a, grad_p, grad_r,
            n, m, d, a.stride(0), p.stride(0), r.stride(0), 1.0 / temperature, anchor_blocks,
            NORMALIZE=normalize, PRECISION=precision, **config,
        )
        return grad_a, grad_p, grad_r, None, None


def infonce_loss_triton(anchors, positives, negatives, temperature: float, normalize: bool) -> torch.Tensor:
    if anchors.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1":
        # the interpreter has no bfloat16 arithmetic: run it in fp32 (GPUs run bf16 natively)
        return InfoNCETriton.apply(anchors.float(), positives.float(), negatives.float(), temperature,
                                   normalize).to(torch.bfloat16)
    return InfoNCETriton.apply(anchors, positives, negatives, temperature, normalize)
