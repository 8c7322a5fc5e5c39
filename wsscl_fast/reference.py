"""Plain PyTorch ground truth for every op in wsscl_fast (see docs/method.md).

Everything here is written for readability, directly from the formulas. The fused
backends (Triton, C++) are tested against these functions; these functions are tested
against autograd of the naive formula, against ``torch.optim`` and against hand-made
cases. Never edit them to match a kernel.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# the storage formats (how a mask is packed, a weight quantised) are definitions, not numerics
from .saliency_storage import keep_count, pack_mask, quantize_saliency

__all__ = [
    "infonce_loss_ref",
    "masked_sgd_step_ref",
    "masked_adamw_step_ref",
    "saliency_threshold_ref",
    "saliency_from_scores_ref",
    "forgetting_loss_ref",
]


def _accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    """fp16/bf16 are computed in fp32; fp32 and fp64 stay as they are."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def infonce_loss_ref(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = 0.5,
    normalize: bool = True,
) -> torch.Tensor:
    """Scaled InfoNCE with one positive per anchor and shared negatives.

    A: (N, D) anchors, P: (N, D) positives, R: (M, D) negatives, s = cosine (or the dot
    product when ``normalize=False``), tau = temperature::

        L = 1/N sum_i [ -s(A_i, P_i)/tau + log( exp(s(A_i, P_i)/tau) + sum_j exp(s(A_i, R_j)/tau) ) ]

    Returns a scalar in the input dtype; fp16/bf16 are accumulated in fp32.
    """
    acc = _accumulation_dtype(anchors)
    a, p, r = anchors.to(acc), positives.to(acc), negatives.to(acc)
    if normalize:
        a, p, r = F.normalize(a, dim=1), F.normalize(p, dim=1), F.normalize(r, dim=1)
    positive_logits = (a * p).sum(dim=1) / temperature  # (N,)
    negative_logits = a @ r.T / temperature  # (N, M)
    all_logits = torch.cat([positive_logits[:, None], negative_logits], dim=1)  # (N, 1+M)
    loss = (torch.logsumexp(all_logits, dim=1) - positive_logits).mean()
    return loss.to(anchors.dtype)


def _as_weight(saliency: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return saliency.to(like.dtype)


@torch.no_grad()
def masked_sgd_step_ref(
    param: torch.Tensor,
    grad: torch.Tensor,
    saliency: torch.Tensor,
    momentum_buffer: torch.Tensor | None,
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.Tensor | None:
    """One saliency-weighted SGD step, in place on ``param`` (and ``momentum_buffer``).

    For every coordinate with w > 0 (w = saliency, bool or float in [0, 1]):
        d = g + wd * p;  buf = mu * buf + d  (buf = d on the first update);
        u = d + mu * buf if nesterov else buf;  p <- p - lr * w * u.
    Coordinates with w == 0 keep their parameter and buffer bit for bit.
    ``momentum_buffer`` is None on the first step; the (new) buffer is returned,
    None when momentum == 0. fp16/bf16 parameters are stepped in fp32 with an fp32
    buffer and rounded once when stored.
    """
    active = saliency > 0
    stored = param
    param, grad = param.to(_accumulation_dtype(param)), grad.to(_accumulation_dtype(param))
    d = grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad
    if momentum != 0:
        if momentum_buffer is None:
            momentum_buffer = torch.zeros_like(param)
        new_buffer = momentum_buffer.mul(momentum).add(d)
        momentum_buffer.copy_(torch.where(active, new_buffer, momentum_buffer))
        update = d.add(momentum_buffer, alpha=momentum) if nesterov else momentum_buffer
    else:
        update = d
    if saliency.dtype == torch.bool:
        stepped = param.add(update, alpha=-lr)
    else:
        stepped = param - lr * (_as_weight(saliency, param) * update)
    stored.copy_(torch.where(active, stepped, param))
    return momentum_buffer


@torch.no_grad()
def masked_adamw_step_ref(
    param: torch.Tensor,
    grad: torch.Tensor,
    saliency: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: int,
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> None:
    """One saliency-weighted AdamW step, in place; ``step`` is the 1-based count k.

        p <- p * (1 - lr * wd * w);  where w > 0:
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
        p <- p - lr * w * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps).
    Coordinates with w == 0 keep parameter, m and v bit for bit. The op order follows
    torch.optim.AdamW (single-tensor path) so that w == 1 reproduces it exactly.
    fp16/bf16 parameters are stepped in fp32 with fp32 m and v, rounded once when stored.
    """
    active = saliency > 0
    hard = saliency.dtype == torch.bool
    stored = param
    param, grad = param.to(_accumulation_dtype(param)), grad.to(_accumulation_dtype(param))
    if hard:
        decayed = param.mul(1 - lr * weight_decay)
    else:
        decayed = param * (1 - lr * weight_decay * _as_weight(saliency, param))
    exp_avg.copy_(torch.where(active, exp_avg.lerp(grad, 1 - beta1), exp_avg))
    new_sq = exp_avg_sq.mul(beta2).addcmul(grad, grad, value=1 - beta2)
    exp_avg_sq.copy_(torch.where(active, new_sq, exp_avg_sq))
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add(eps)
    if hard:
        stepped = decayed.addcdiv(exp_avg, denom, value=-step_size)
    else:
        stepped = decayed - step_size * (_as_weight(saliency, param) * (exp_avg / denom))
    stored.copy_(torch.where(active, stepped, param))


def saliency_threshold_ref(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Global threshold t such that the top ``ratio`` fraction of ``scores`` have g >= t.

    t is the k-th largest score with k = round(ratio * n), i.e. the (n - k + 1)-th
    smallest; ties at t are all kept by ``g >= t``. Returns a 0-d tensor.
    """
    flat = scores.reshape(-1)
    k = keep_count(flat.numel(), ratio)
    return torch.kthvalue(flat, flat.numel() - k + 1).values


def saliency_from_scores_ref(
    scores: list[torch.Tensor], ratio: float = 0.5, mode: str = "soft", storage: str = "dense",
) -> list[torch.Tensor]:
    """Turn accumulated |grad| scores into saliency, one tensor per parameter.

    hard: m = 1[g >= t]  (bool).  soft: s = clamp(g / t, 0, 1)  (float32),
    where t is the global top-``ratio`` threshold over all coordinates of all tensors.
    ``storage="bits"`` packs hard masks (``saliency_storage.pack_mask``); ``"uint8"`` quantises soft
    weights (``saliency_storage.quantize_saliency``).
    """
    threshold = saliency_threshold_ref(torch.cat([s.reshape(-1).float() for s in scores]), ratio)
    out = []
    for g in scores:
        g = g.float()
        if mode == "hard":
            out.append(g >= threshold)
        else:
            soft = torch.where(g >= threshold, torch.ones_like(g), g / threshold)
            out.append(soft.clamp(0, 1))
    if storage == "bits":
        return [pack_mask(m) for m in out]
    if storage == "uint8":
        return [quantize_saliency(w) for w in out]
    return out


def forgetting_loss_ref(
    forget_logits: torch.Tensor,
    pseudo_labels: torch.Tensor,
    kl_bound: float | torch.Tensor,
    retain_logits: torch.Tensor | None = None,
    retain_targets: torch.Tensor | None = None,
    retain_weight: float = 1.0,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stage-1 loss: -mean_i w_i min(KL(q_i || softmax(z_i)), kl_bound_i) + alpha * CE(retain).

    forget_logits: (B, C) logits of the model being unlearned; pseudo_labels: (B, C)
    aggregated soft labels q (rows sum to 1); kl_bound: a number or one bound per row (B,);
    sample_weights: w (B,), 1 when None. The retain term is optional.
    """
    log_probs = F.log_softmax(forget_logits.float(), dim=1)
    q = pseudo_labels.float()
    kl_per_sample = (torch.xlogy(q, q) - q * log_probs).sum(dim=1)
    bounded = torch.minimum(kl_per_sample, torch.as_tensor(kl_bound, dtype=kl_per_sample.dtype, device=kl_per_sample.device))
    if sample_weights is not None:
        bounded = bounded * sample_weights
    loss = -bounded.mean()
    if retain_logits is not None:
        loss = loss + retain_weight * F.cross_entropy(retain_logits.float(), retain_targets)
    return loss
