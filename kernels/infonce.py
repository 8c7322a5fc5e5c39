r"""Fused scaled InfoNCE in Triton: forward and backward without the N x M similarity matrix.

Inputs A (N, D) anchors, P (N, D) positives, R (M, D) negatives; with normalisation
x_hat = x / max(||x||, 1e-12) (otherwise x_hat = x), tau the temperature:

    l_i+ = <a_i, p_i> / tau,   l_ij = <a_i, r_j> / tau,   lse_i = log(e^{l_i+} + sum_j e^{l_ij})
    L    = 1/N sum_i (lse_i - l_i+)

The reference is ``wsscl_fast.reference.infonce_loss_ref``; the backward formulas are derived
in ``docs/method.md`` (with c = dL_out / N, e_ij = exp(l_ij - lse_i), g_i+ = c (e_i+ - 1)):

    dA_i = inv_a/tau (c sum_j e_ij inv_r_j r_j + g_i+ inv_p p_i) - a_i inv_a^2 (c sum_j e_ij l_ij + g_i+ l_i+)
    dP_i = g_i+ (inv_p inv_a / tau a_i - inv_p^2 l_i+ p_i)
    dR_j = c (inv_r/tau sum_i e_ij inv_a_i a_i - r_j inv_r^2 sum_i e_ij l_ij)

(without normalisation every inv_* is 1 and the second terms vanish).

Kernels (every one tiles D in a loop, so registers and shared memory are bounded for any D):
  * ``_infonce_fwd_kernel``, grid (anchor blocks, splits of M): an online log-sum-exp over its
    share of R; writes a partial lse (splits, N) and the row statistics (inv norms, l_i+).
    The partials are merged on the device by torch (``logsumexp`` over splits, fixed order).
  * ``_infonce_bwd_anchor_kernel``, grid (anchor blocks, D chunks, splits of M): recomputes
    its logit tiles and accumulates sum_j e_ij inv_r_j r_j for one BLOCK_DO slice of D, plus
    sum_j e_ij l_ij, as fp32 partials (splits, N, D) and (splits, N);
    ``_infonce_bwd_anchor_finish_kernel`` adds the partials in a fixed order and writes dA, dP.
  * ``_infonce_bwd_negative_kernel``, grid (negative blocks, D chunks): walks all anchors and
    writes dR directly.
Nothing is accumulated across programs with atomics: results are deterministic for a given
device. Extra memory: (splits + 5) N + M floats and splits * N * D fp32 partials, with splits
capped so that the partials stay under ``PARTIAL_BYTES``.

Filling the GPU (132 SMs on an H100/H200, ``splits`` aims at 2 programs per SM):
  * (N, M, D) = (128, 256, 512), bf16: 2 anchor blocks x 4 splits = 8 forward programs; the
    backward runs 2 x 4 x 4 = 32 anchor and 4 x 4 = 16 negative programs. The whole problem is
    8 output tiles of 64 x 64, so it cannot fill 132 SMs; it is latency-bound (microseconds).
  * (1024, 16384, 256): 16 anchor blocks x 16 splits = 256 forward and 512 anchor-backward
    programs (2 D chunks); 256 negative blocks x 2 D chunks = 512 negative programs.
  * (4096, 65536, 256): 64 anchor blocks x 5 splits = 320 forward programs (partials 20 MiB);
    the negative side has 1024 blocks x 2 D chunks.

fp16/bf16 inputs go through ``tl.dot`` with fp32 accumulation (tensor cores); fp32 inputs use
TF32 tensor cores when ``torch.get_float32_matmul_precision()`` is "high" or "medium", and
IEEE fp32 FMA otherwise ("highest", torch's default): exact to fp32 rounding, but without
tensor cores, several times slower on an H100. Tile sizes come from ``LAUNCH_TABLE``, which
the ahead-of-time compile gate (``wsscl_fast.kernels.compile_gate``) reads too.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..backends import triton_interpreted as interpreted
from . import TARGET_ARCHS

FINISH_BLOCK_N, FINISH_BLOCK_D, FINISH_WARPS = 32, 64, 4  # the elementwise finishing kernel's tiles
PARTIAL_BYTES = 32 << 20  # cap on the backward's fp32 (splits, N, D) partials
MAX_SPLITS = 16


# ------------------------------------------------------------------------------------- kernels
@triton.jit
def _inverse_norm(squared_norm, NORMALIZE: tl.constexpr):
    """1 / max(||x||, 1e-12) from ||x||^2, or ones without normalisation."""
    if NORMALIZE:
        return 1.0 / tl.maximum(tl.sqrt(squared_norm), 1e-12)
    else:
        return tl.full(squared_norm.shape, 1.0, tl.float32)


@triton.jit
def _dot_over_features(X, Y, x_rows, y_rows, x_ok, y_ok, D, stride_x, stride_y,
                       PRECISION: tl.constexpr, BLOCK_X: tl.constexpr, BLOCK_Y: tl.constexpr,
                       BLOCK_K: tl.constexpr):
    """(X[x_rows] Y[y_rows]^T (BLOCK_X, BLOCK_Y), ||y_row||^2 (BLOCK_Y,)), in fp32, over D in
    BLOCK_K slices."""
    dots = tl.zeros((BLOCK_X, BLOCK_Y), tl.float32)
    y_squared = tl.zeros((BLOCK_Y,), tl.float32)
    for k in range(0, D, BLOCK_K):
        cols = k + tl.arange(0, BLOCK_K)
        col_ok = cols < D
        x = tl.load(X + x_rows[:, None] * stride_x + cols[None, :], mask=x_ok[:, None] & col_ok[None, :], other=0.0)
        y = tl.load(Y + y_rows[:, None] * stride_y + cols[None, :], mask=y_ok[:, None] & col_ok[None, :], other=0.0)
        dots = tl.dot(x, tl.trans(y), dots, input_precision=PRECISION)
        y32 = y.to(tl.float32)
        y_squared += tl.sum(y32 * y32, axis=1)
    return dots, y_squared


@triton.jit
def _probabilities(dots, inv_a, inv_r, lse, row_ok, neg_ok, inv_tau):
    """Logits l = <a, r> inv_a inv_r / tau and e = exp(l - lse) (0 outside the tile)."""
    logits = dots * (inv_a * inv_tau)[:, None] * inv_r[None, :]
    probs = tl.where(row_ok[:, None] & neg_ok[None, :], tl.exp(logits - lse[:, None]), 0.0)
    return logits, probs


@triton.jit
def _infonce_fwd_kernel(
    A, P, R, PARTIAL_LSE, POS, INV_A, INV_P, INV_R,
    N, M, D, stride_a, stride_p, stride_r, inv_tau, negatives_per_split,
    NORMALIZE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):
    block = tl.program_id(0)
    split = tl.program_id(1)
    rows = block * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    # row statistics of A and P: <a, p>, ||a||^2, ||p||^2
    ap = tl.zeros((BLOCK_N,), tl.float32)
    aa = tl.zeros((BLOCK_N,), tl.float32)
    pp = tl.zeros((BLOCK_N,), tl.float32)
    for k in range(0, D, BLOCK_K):
        cols = k + tl.arange(0, BLOCK_K)
        tile_ok = row_ok[:, None] & (cols < D)[None, :]
        a = tl.load(A + rows[:, None] * stride_a + cols[None, :], mask=tile_ok, other=0.0).to(tl.float32)
        p = tl.load(P + rows[:, None] * stride_p + cols[None, :], mask=tile_ok, other=0.0).to(tl.float32)
        ap += tl.sum(a * p, axis=1)
        aa += tl.sum(a * a, axis=1)
        pp += tl.sum(p * p, axis=1)
    inv_a = _inverse_norm(aa, NORMALIZE)
    inv_p = _inverse_norm(pp, NORMALIZE)
    pos = ap * inv_a * inv_p * inv_tau
    # online log-sum-exp over this program's share of the negatives
    first = split * negatives_per_split
    last = tl.minimum(M, first + negatives_per_split)
    row_max = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    row_sum = tl.zeros((BLOCK_N,), tl.float32)
    for start in range(first, last, BLOCK_M):
        negs = start + tl.arange(0, BLOCK_M)
        neg_ok = negs < last
        dots, rr = _dot_over_features(A, R, rows, negs, row_ok, neg_ok, D, stride_a, stride_r,
                                      PRECISION, BLOCK_N, BLOCK_M, BLOCK_K)
        inv_r = _inverse_norm(rr, NORMALIZE)
        logits = tl.where(neg_ok[None, :], dots * (inv_a * inv_tau)[:, None] * inv_r[None, :], float("-inf"))
        new_max = tl.maximum(row_max, tl.max(logits, axis=1))
        row_sum = row_sum * tl.exp(row_max - new_max) + tl.sum(tl.exp(logits - new_max[:, None]), axis=1)
        row_max = new_max
        tl.store(INV_R + negs, inv_r, mask=neg_ok & (block == 0))
    tl.store(PARTIAL_LSE + split * N + rows, row_max + tl.log(row_sum), mask=row_ok)
    first_split = row_ok & (split == 0)
    tl.store(POS + rows, pos, mask=first_split)
    tl.store(INV_A + rows, inv_a, mask=first_split)
    tl.store(INV_P + rows, inv_p, mask=first_split)


@triton.jit
def _infonce_bwd_anchor_kernel(
    A, R, LSE, INV_A, INV_R, PARTIAL_W, PARTIAL_PROJ,
    N, M, D, stride_a, stride_r, inv_tau, negatives_per_split,
    PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_DO: tl.constexpr,
):
    """PARTIAL_W[s, i, cols] = sum_{j in split s} e_ij inv_r_j r_j[cols]; PARTIAL_PROJ[s, i] = sum_j e_ij l_ij."""
    block = tl.program_id(0)
    chunk = tl.program_id(1)
    split = tl.program_id(2)
    rows = block * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    out_cols = chunk * BLOCK_DO + tl.arange(0, BLOCK_DO)
    out_ok = out_cols < D
    inv_a = tl.load(INV_A + rows, mask=row_ok, other=0.0)
    lse = tl.load(LSE + rows, mask=row_ok, other=0.0)
    weighted = tl.zeros((BLOCK_N, BLOCK_DO), tl.float32)
    projection = tl.zeros((BLOCK_N,), tl.float32)
    first = split * negatives_per_split
    last = tl.minimum(M, first + negatives_per_split)
    for start in range(first, last, BLOCK_M):
        negs = start + tl.arange(0, BLOCK_M)
        neg_ok = negs < last
        dots, _ = _dot_over_features(A, R, rows, negs, row_ok, neg_ok, D, stride_a, stride_r,
                                     PRECISION, BLOCK_N, BLOCK_M, BLOCK_K)
        inv_r = tl.load(INV_R + negs, mask=neg_ok, other=0.0)
        logits, probs = _probabilities(dots, inv_a, inv_r, lse, row_ok, neg_ok, inv_tau)
        r = tl.load(R + negs[:, None] * stride_r + out_cols[None, :], mask=neg_ok[:, None] & out_ok[None, :], other=0.0)
        weighted = tl.dot((probs * inv_r[None, :]).to(r.dtype), r, weighted, input_precision=PRECISION)
        projection += tl.sum(probs * logits, axis=1)
    partial_rows = split * N + rows
    tl.store(PARTIAL_W + partial_rows[:, None] * D + out_cols[None, :], weighted,
             mask=row_ok[:, None] & out_ok[None, :])
    tl.store(PARTIAL_PROJ + partial_rows, projection, mask=row_ok & (chunk == 0))


@triton.jit
def _infonce_bwd_anchor_finish_kernel(
    A, P, PARTIAL_W, PARTIAL_PROJ, LSE, POS, INV_A, INV_P, GRAD_OUT, DA, DP,
    N, D, stride_a, stride_p, inv_tau, splits,
    NORMALIZE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DO: tl.constexpr,
):
    """dA, dP from the partials (added in split order) and the row statistics."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_DO + tl.arange(0, BLOCK_DO)
    row_ok = rows < N
    tile_ok = row_ok[:, None] & (cols < D)[None, :]
    weighted = tl.zeros((BLOCK_N, BLOCK_DO), tl.float32)
    projection = tl.zeros((BLOCK_N,), tl.float32)
    for s in range(0, splits):
        weighted += tl.load(PARTIAL_W + (s * N + rows)[:, None] * D + cols[None, :], mask=tile_ok, other=0.0)
        projection += tl.load(PARTIAL_PROJ + s * N + rows, mask=row_ok, other=0.0)
    c = tl.load(GRAD_OUT).to(tl.float32) / N
    lse = tl.load(LSE + rows, mask=row_ok, other=0.0)
    pos = tl.load(POS + rows, mask=row_ok, other=0.0)
    inv_a = tl.load(INV_A + rows, mask=row_ok, other=0.0)
    inv_p = tl.load(INV_P + rows, mask=row_ok, other=0.0)
    a = tl.load(A + rows[:, None] * stride_a + cols[None, :], mask=tile_ok, other=0.0).to(tl.float32)
    p = tl.load(P + rows[:, None] * stride_p + cols[None, :], mask=tile_ok, other=0.0).to(tl.float32)
    grad_pos = c * (tl.exp(pos - lse) - 1.0)
    grad_a = (inv_a * inv_tau)[:, None] * (c * weighted + (grad_pos * inv_p)[:, None] * p)
    grad_p = (grad_pos * inv_p * inv_a * inv_tau)[:, None] * a
    if NORMALIZE:
        grad_a -= a * (inv_a * inv_a * (c * projection + grad_pos * pos))[:, None]
        grad_p -= p * (grad_pos * inv_p * inv_p * pos)[:, None]
    tl.store(DA + rows[:, None] * D + cols[None, :], grad_a.to(DA.dtype.element_ty), mask=tile_ok)
    tl.store(DP + rows[:, None] * D + cols[None, :], grad_p.to(DP.dtype.element_ty), mask=tile_ok)


@triton.jit
def _infonce_bwd_negative_kernel(
    A, R, LSE, INV_A, INV_R, GRAD_OUT, DR,
    N, M, D, stride_a, stride_r, inv_tau,
    NORMALIZE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_DO: tl.constexpr,
):
    """dR for BLOCK_M negatives and one BLOCK_DO slice of D, walking all anchors."""
    negs = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    out_cols = tl.program_id(1) * BLOCK_DO + tl.arange(0, BLOCK_DO)
    neg_ok = negs < M
    out_ok = out_cols < D
    inv_r = tl.load(INV_R + negs, mask=neg_ok, other=0.0)
    weighted = tl.zeros((BLOCK_M, BLOCK_DO), tl.float32)  # sum_i e_ij inv_a_i a_i[cols]
    projection = tl.zeros((BLOCK_M,), tl.float32)  # sum_i e_ij l_ij
    for start in range(0, N, BLOCK_N):
        rows = start + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        dots, _ = _dot_over_features(A, R, rows, negs, row_ok, neg_ok, D, stride_a, stride_r,
                                     PRECISION, BLOCK_N, BLOCK_M, BLOCK_K)
        inv_a = tl.load(INV_A + rows, mask=row_ok, other=0.0)
        lse = tl.load(LSE + rows, mask=row_ok, other=0.0)
        logits, probs = _probabilities(dots, inv_a, inv_r, lse, row_ok, neg_ok, inv_tau)
        a = tl.load(A + rows[:, None] * stride_a + out_cols[None, :], mask=row_ok[:, None] & out_ok[None, :], other=0.0)
        weighted = tl.dot(tl.trans((probs * inv_a[:, None]).to(a.dtype)), a, weighted, input_precision=PRECISION)
        projection += tl.sum(probs * logits, axis=0)
    c = tl.load(GRAD_OUT).to(tl.float32) / N
    tile_ok = neg_ok[:, None] & out_ok[None, :]
    grad_r = (c * inv_r * inv_tau)[:, None] * weighted
    if NORMALIZE:
        r = tl.load(R + negs[:, None] * stride_r + out_cols[None, :], mask=tile_ok, other=0.0).to(tl.float32)
        grad_r -= r * (c * inv_r * inv_r * projection)[:, None]
    tl.store(DR + negs[:, None] * D + out_cols[None, :], grad_r.to(DR.dtype.element_ty), mask=tile_ok)


# ------------------------------------------------------------------------------- launch table
@dataclass(frozen=True)
class Tiles:
    """Tile sizes and launch options of one InfoNCE configuration."""
    block_n: int
    block_m: int
    block_k: int  # D slice of the logit GEMMs
    block_do: int  # D slice of the gradient outputs
    num_warps: int
    num_stages: int


ARCHS = TARGET_ARCHS  # other GPUs use the nearest row below
PRECISIONS = ("ieee", "tf32", "fp16", "bf16")
FEATURE_BUCKETS = (16, 32, 64, 128)  # next power of two of D, clamped: D is tiled in a loop


def _tiles(arch: int, precision: str, bucket: int) -> Tiles:
    """The rule behind ``LAUNCH_TABLE``; every row is compiled and checked by the gate."""
    if precision == "ieee":  # fp32 FMA: small tiles keep the register file from spilling
        return Tiles(32, 32, min(bucket, 32), min(bucket, 64), num_warps=4, num_stages=2)
    if precision == "tf32":  # fp32 operands: half the K slice; on sm_80 a 64 x 128 fp32 output tile spills
        if arch >= 90:
            return Tiles(64, 64, min(bucket, 32), bucket, num_warps=8, num_stages=3)
        return Tiles(32, 64, min(bucket, 32), min(bucket, 64), num_warps=8, num_stages=2)
    return Tiles(64, 64, min(bucket, 64), bucket, num_warps=8, num_stages=3 if arch >= 90 else 2)


LAUNCH_TABLE = {key: _tiles(*key) for key in itertools.product(ARCHS, PRECISIONS, FEATURE_BUCKETS)}


def dot_precision(precision: str) -> str:
    """``tl.dot``'s input_precision for a table key (it only matters for fp32 operands)."""
    return "ieee" if precision == "ieee" else "tf32"


def precision_of(dtype: torch.dtype) -> str:
    """The table's precision key for an input dtype (fp32 follows torch's matmul precision)."""
    if dtype == torch.float32:
        return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]


def feature_bucket(d: int) -> int:
    return min(max(16, triton.next_power_of_2(d)), FEATURE_BUCKETS[-1])


def tiles_for(d: int, dtype: torch.dtype, device: torch.device) -> Tiles:
    """The launch configuration for D features of ``dtype`` on ``device``. Under the
    interpreter, fewer and larger programs are cheaper: D is held in one slice."""
    if interpreted():
        whole = max(16, triton.next_power_of_2(d))
        return Tiles(64, 64, whole, whole, num_warps=4, num_stages=1)
    major, minor = torch.cuda.get_device_capability(device)
    arch = max(a for a in ARCHS if a <= max(ARCHS[0], 10 * major + minor))
    return LAUNCH_TABLE[(arch, precision_of(dtype), feature_bucket(d))]


def _split_count(row_blocks: int, neg_tiles: int, n: int, d: int, device: torch.device) -> int:
    """Splits of M so that about two programs run per SM, within the partials' memory cap."""
    if device.type != "cuda":
        return 1
    target = 2 * torch.cuda.get_device_properties(device).multi_processor_count
    by_memory = max(1, PARTIAL_BYTES // (4 * n * d))
    return max(1, min(triton.cdiv(target, row_blocks), neg_tiles, MAX_SPLITS, by_memory))


# ------------------------------------------------------------------ launchers, as registered ops
def _rows_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(1) == 1 else x.contiguous()


@dataclass(frozen=True)
class _Plan:
    tiles: Tiles
    precision: str  # tl.dot's input_precision
    splits: int  # programs that divide M
    negatives_per_split: int


def _plan(a: torch.Tensor, m: int, tiles: list[int], splits: int) -> _Plan:
    """The launch of inputs like ``a`` against M negatives; ``tiles`` (the six fields of a
    :class:`Tiles`) and ``splits`` > 0 override the device's choice (tests use them). The forward
    and the backward compute the same plan from the same arguments."""
    n, d = a.shape
    chosen = Tiles(*tiles) if tiles else tiles_for(d, a.dtype, a.device)
    precision = "ieee" if interpreted() else dot_precision(precision_of(a.dtype))
    row_blocks, neg_tiles = triton.cdiv(n, chosen.block_n), triton.cdiv(m, chosen.block_m)
    wanted = min(splits or _split_count(row_blocks, neg_tiles, n, d, a.device), neg_tiles)
    negatives_per_split = triton.cdiv(neg_tiles, wanted) * chosen.block_m
    return _Plan(chosen, precision, triton.cdiv(m, negatives_per_split), negatives_per_split)


@torch.library.custom_op("wsscl_fast::infonce_triton_fwd", mutates_args=())
def infonce_triton_fwd(anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, temperature: float,
                       normalize: bool, tiles: list[int], splits: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor, torch.Tensor,
                                                                                torch.Tensor, torch.Tensor]:
    """(mean loss in fp32, lse, s_ii / tau, 1/|A_i|, 1/|P_i|, 1/|R_j|): the loss and the O(N + M)
    row statistics the backward needs; never the N x M matrix."""
    a, p, r = (_rows_contiguous(x) for x in (anchors, positives, negatives))
    n, d = a.shape
    m = r.shape[0]
    assert p.shape == (n, d) and r.shape[1] == d, f"shapes {tuple(a.shape)}, {tuple(p.shape)}, {tuple(r.shape)}"
    assert a.dtype == p.dtype == r.dtype and a.device == p.device == r.device, "one dtype and device"
    plan = _plan(a, m, tiles, splits)
    stats = torch.empty((plan.splits + 3, n), device=a.device, dtype=torch.float32)
    partial_lse, (pos, inv_a, inv_p) = stats[:plan.splits], stats[plan.splits:]
    inv_r = torch.empty(m, device=a.device, dtype=torch.float32)
    _infonce_fwd_kernel[(triton.cdiv(n, plan.tiles.block_n), plan.splits)](
        a, p, r, partial_lse, pos, inv_a, inv_p, inv_r, n, m, d, a.stride(0), p.stride(0), r.stride(0),
        1.0 / temperature, plan.negatives_per_split, NORMALIZE=normalize, PRECISION=plan.precision,
        BLOCK_N=plan.tiles.block_n, BLOCK_M=plan.tiles.block_m, BLOCK_K=plan.tiles.block_k,
        num_warps=plan.tiles.num_warps, num_stages=plan.tiles.num_stages,
    )
    lse = torch.logaddexp(pos, torch.logsumexp(partial_lse, dim=0))
    return (lse - pos).sum() / n, lse, pos.clone(), inv_a.clone(), inv_p.clone(), inv_r


@infonce_triton_fwd.register_fake
def _(anchors, positives, negatives, temperature, normalize, tiles, splits):
    n, m = anchors.shape[0], negatives.shape[0]
    rows = [anchors.new_empty((n,), dtype=torch.float32) for _ in range(4)]
    return anchors.new_empty((), dtype=torch.float32), *rows, anchors.new_empty((m,), dtype=torch.float32)


@torch.library.custom_op("wsscl_fast::infonce_triton_bwd", mutates_args=())
def infonce_triton_bwd(grad_loss: torch.Tensor, anchors: torch.Tensor, positives: torch.Tensor,
                       negatives: torch.Tensor, lse: torch.Tensor, pos: torch.Tensor, inv_a: torch.Tensor,
                       inv_p: torch.Tensor, inv_r: torch.Tensor, temperature: float, normalize: bool, tiles: list[int],
                       splits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dA, dP, dR) of ``grad_loss`` times the mean loss, from the forward's row statistics: the
    tiles of the logits are recomputed, in the forward's plan."""
    a, p, r = (_rows_contiguous(x) for x in (anchors, positives, negatives))
    n, d = a.shape
    m = r.shape[0]
    plan = _plan(a, m, tiles, splits)
    tiles_, inv_tau = plan.tiles, 1.0 / temperature
    grad_out = grad_loss.float().reshape(1)
    chunks = triton.cdiv(d, tiles_.block_do)
    blocks = dict(BLOCK_N=tiles_.block_n, BLOCK_M=tiles_.block_m, BLOCK_K=tiles_.block_k, BLOCK_DO=tiles_.block_do)
    launch = dict(num_warps=tiles_.num_warps, num_stages=tiles_.num_stages)
    partial_w = torch.empty((plan.splits, n, d), device=a.device, dtype=torch.float32)
    partial_proj = torch.empty((plan.splits, n), device=a.device, dtype=torch.float32)
    _infonce_bwd_anchor_kernel[(triton.cdiv(n, tiles_.block_n), chunks, plan.splits)](
        a, r, lse, inv_a, inv_r, partial_w, partial_proj, n, m, d, a.stride(0), r.stride(0), inv_tau,
        plan.negatives_per_split, PRECISION=plan.precision, **blocks, **launch,
    )
    grad_a, grad_p = (torch.empty((n, d), device=a.device, dtype=a.dtype) for _ in range(2))
    finish_grid = (triton.cdiv(n, FINISH_BLOCK_N), triton.cdiv(d, FINISH_BLOCK_D))
    _infonce_bwd_anchor_finish_kernel[finish_grid](
        a, p, partial_w, partial_proj, lse, pos, inv_a, inv_p, grad_out, grad_a, grad_p, n, d,
        a.stride(0), p.stride(0), inv_tau, plan.splits, NORMALIZE=normalize, BLOCK_N=FINISH_BLOCK_N,
        BLOCK_DO=FINISH_BLOCK_D, num_warps=FINISH_WARPS,
    )
    grad_r = torch.empty((m, d), device=a.device, dtype=a.dtype)
    _infonce_bwd_negative_kernel[(triton.cdiv(m, tiles_.block_m), chunks)](
        a, r, lse, inv_a, inv_r, grad_out, grad_r, n, m, d, a.stride(0), r.stride(0), inv_tau,
        NORMALIZE=normalize, PRECISION=plan.precision, **blocks, **launch,
    )
    return grad_a, grad_p, grad_r


@infonce_triton_bwd.register_fake
def _(grad_loss, anchors, positives, negatives, lse, pos, inv_a, inv_p, inv_r, temperature, normalize, tiles, splits):
    return (anchors.new_empty(anchors.shape), positives.new_empty(positives.shape),
            negatives.new_empty(negatives.shape))


def _setup_context(ctx, inputs, output):
    anchors, positives, negatives, temperature, normalize, tiles, splits = inputs
    ctx.save_for_backward(anchors, positives, negatives, *output[1:])
    ctx.settings = (temperature, normalize, tiles, splits)


def _backward(ctx, grad_loss, *_unused_grad_statistics):
    if torch.is_grad_enabled():
        raise RuntimeError("infonce_loss on the triton backend is not twice differentiable "
                           "(create_graph=True); use backend='torch' for double backward")
    grads = infonce_triton_bwd(grad_loss, *ctx.saved_tensors, *ctx.settings)
    return (*grads, None, None, None, None)


infonce_triton_fwd.register_autograd(_backward, setup_context=_setup_context)


def infonce_loss_triton(anchors, positives, negatives, temperature: float, normalize: bool, tiles: Tiles | None = None,
                        splits: int = 0) -> torch.Tensor:
    """The mean loss in the inputs' dtype, through the registered ops (``tiles``/``splits``: tests)."""
    tile_fields = [getattr(tiles, f) for f in Tiles.__dataclass_fields__] if tiles else []
    if anchors.dtype == torch.bfloat16 and interpreted():
        # the interpreter has no bfloat16 arithmetic: run it in fp32 (GPUs run bf16 natively)
        anchors, positives, negatives = anchors.float(), positives.float(), negatives.float()
        return infonce_triton_fwd(anchors, positives, negatives, temperature, normalize, tile_fields,
                                  splits)[0].to(torch.bfloat16)
    loss = infonce_triton_fwd(anchors, positives, negatives, temperature, normalize, tile_fields, splits)[0]
    return loss.to(anchors.dtype)


# ------------------------------------------------------------------- ahead-of-time compile specs
_ELEMENT = {"ieee": "fp32", "tf32": "fp32", "fp16": "fp16", "bf16": "bf16"}


def compile_specs():
    """Every launch the launcher can choose (each row of ``LAUNCH_TABLE``, both normalisation
    settings), for the compile gate. The quick subset is sm_90 at D >= 128."""
    from .aot import kernel_types, CompileSpec

    specs = []
    for (arch, precision, bucket), tiles in LAUNCH_TABLE.items():
        blocks = dict(BLOCK_N=tiles.block_n, BLOCK_M=tiles.block_m, BLOCK_K=tiles.block_k, BLOCK_DO=tiles.block_do)
        forward_blocks = dict(BLOCK_N=tiles.block_n, BLOCK_M=tiles.block_m, BLOCK_K=tiles.block_k)
        launches = [
            (_infonce_fwd_kernel, "fwd", forward_blocks, True),
            (_infonce_bwd_anchor_kernel, "bwd anchors", blocks, True),
            (_infonce_bwd_negative_kernel, "bwd negatives", blocks, True),
            (_infonce_bwd_anchor_finish_kernel, "bwd finish", dict(BLOCK_N=FINISH_BLOCK_N, BLOCK_DO=FINISH_BLOCK_D),
             False),
        ]
        for kernel, what, constexprs, has_dot in launches:
            names = kernel.arg_names
            for normalize in ((True, False) if "NORMALIZE" in names else (None,)):
                values = dict(constexprs)
                if normalize is not None:
                    values["NORMALIZE"] = normalize
                if "PRECISION" in names:
                    values["PRECISION"] = dot_precision(precision)
                types, divisible = kernel_types(kernel, element=_ELEMENT[precision],
                                                inputs=("A", "P", "R", "DA", "DP", "DR"))
                flavour = "" if normalize is None else " norm" if normalize else " raw"
                label = f"infonce {what} {precision} D~{bucket}{flavour}"
                warps, stages = (tiles.num_warps, tiles.num_stages) if has_dot else (FINISH_WARPS, 1)
                specs.append(CompileSpec(
                    kernel, label, types, values, warps, stages, arch,
                    tensor_cores=has_dot and precision != "ieee", no_spills=precision != "ieee",
                    quick=arch == 90 and bucket == FEATURE_BUCKETS[-1], divisible=divisible))
    return specs
