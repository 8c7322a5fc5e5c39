"""Per-example distances between an ensemble of unlearned models and an ensemble of oracles
(models retrained without the forget set on different seeds). Both take margins, not models.

- margin of a sample under a model: ``z_y - logsumexp_{j != y} z_j`` (z the logits, y the
  label); it equals LiRA's logit-scaled confidence ``log p_y - log(1 - p_y)``.
- KLoM (Georgiev et al. 2024, "Attribute-to-Delete", App. E.1): per sample, the KL divergence
  ``KL(P_unlearned || P_oracle)`` between the two ensembles' margin distributions, each a
  histogram over the same ``bins`` equal-width bins spanning both ensembles' margins, with
  ``smoothing`` added to every bin's probability so that an empty oracle bin stays finite.
- Prediction KL (one model against one oracle): per sample, ``KL(softmax(z_oracle) || softmax(z))``
  of the two models' logits, for a sequence of requests with one Retrain per request.
- Challenge score (NeurIPS 2023 Machine Unlearning Challenge): per forget sample, the
  ε of the best single-threshold attack telling unlearned margins from oracle margins, bucketed
  into 0.5-wide buckets worth 1, 1/2, 1/4, ... up to ``ceil(ln(N - 1))`` (the most ε that N
  models per side can show); the mean over samples, times ``RA_u / RA_r * TA_u / TA_r``.

Shapes: margins are ``(models, samples)``; per-sample results are ``(samples,)``.
"""
from __future__ import annotations

import math

import torch

CHALLENGE_DELTA = 1e-5  #: δ of the (ε, δ) attack bound, as in the challenge
EPSILON_CAP = 50.0  #: ε of a perfect separation


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(..., samples, classes)`` logits and ``(samples,)`` labels -> ``(..., samples)`` margins, fp64."""
    if logits.dim() < 2:
        raise ValueError(f"logits must be (..., samples, classes), got shape {tuple(logits.shape)}")
    if labels.shape != logits.shape[-2:-1]:
        raise ValueError(f"labels must be ({logits.shape[-2]},) to match logits {tuple(logits.shape)}, "
                         f"got {tuple(labels.shape)}")
    z = logits.double()
    index = labels.to(z.device).expand(*z.shape[:-1])[..., None]
    own = z.gather(-1, index).squeeze(-1)
    others = z.scatter(-1, index, float("-inf")).logsumexp(-1)
    return own - others


def _check_ensembles(unlearned: torch.Tensor, oracle: torch.Tensor, least: int = 1) -> None:
    for name, m in (("unlearned", unlearned), ("oracle", oracle)):
        if m.dim() != 2:
            raise ValueError(f"{name} margins must be (models, samples), got shape {tuple(m.shape)}")
        if m.shape[0] < least:
            raise ValueError(f"{name} margins need at least {least} models, got {m.shape[0]}")
        if not torch.isfinite(m).all():
            raise ValueError(f"{name} margins contain NaN or infinite values")
    if unlearned.shape[1] != oracle.shape[1]:
        raise ValueError(f"unlearned and oracle margins must cover the same samples, "
                         f"got {unlearned.shape[1]} and {oracle.shape[1]}")


def _histograms(values: torch.Tensor, low: torch.Tensor, width: torch.Tensor, bins: int) -> torch.Tensor:
    """(models, samples) values -> (samples, bins) bin frequencies, per-sample bins [low, low + bins * width]."""
    index = ((values - low) / width).floor().clamp(0, bins - 1).long()
    counts = torch.zeros(values.shape[1], bins, dtype=torch.float64, device=values.device)
    counts.scatter_add_(1, index.T, torch.ones_like(index.T, dtype=torch.float64))
    return counts / values.shape[0]


def klom(unlearned: torch.Tensor, oracle: torch.Tensor, bins: int = 20, smoothing: float = 1e-5) -> torch.Tensor:
    """Per-sample KLoM: ``(models_u, samples)`` and ``(models_o, samples)`` margins -> ``(samples,)``.

    0 when both ensembles fill the same bins alike; it grows as they separate."""
    _check_ensembles(unlearned, oracle)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    u, o = unlearned.double(), oracle.double()
    low = torch.minimum(u.min(0).values, o.min(0).values)
    high = torch.maximum(u.max(0).values, o.max(0).values)
    width = ((high - low) / bins).clamp_min(torch.finfo(torch.float64).tiny)  # all equal: one bin holds all
    p = _histograms(u, low, width, bins) + smoothing
    q = _histograms(o, low, width, bins) + smoothing
    p, q = p / p.sum(1, keepdim=True), q / q.sum(1, keepdim=True)
    return (p * (p / q).log()).sum(1)


def prediction_kl(oracle_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(oracle_logits) || softmax(logits)) per row of two (samples, classes) tensors, in nats."""
    if oracle_logits.shape != logits.shape or logits.dim() != 2:
        raise ValueError(f"prediction_kl needs two (samples, classes) logits of one shape, got "
                         f"{tuple(oracle_logits.shape)} and {tuple(logits.shape)}")
    log_p, log_q = torch.log_softmax(oracle_logits.double(), 1), torch.log_softmax(logits.double(), 1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).float()


def summarize(per_sample: torch.Tensor) -> dict:
    """Mean and 95th percentile of per-sample values."""
    values = per_sample.double()
    return {"mean": float(values.mean()), "p95": float(torch.quantile(values, 0.95))}


def attack_epsilons(unlearned: torch.Tensor, oracle: torch.Tensor, delta: float = CHALLENGE_DELTA) -> torch.Tensor:
    """Per-sample ε of the best single-threshold attack ("margin >= t" means one side) between
    ``(models_u, samples)`` and ``(models_o, samples)`` margins -> ``(samples,)``.

    At a threshold with false-positive rate a and false-negative rate b (either side called
    positive), ε = max(ln(1 - δ - a) - ln b, ln(1 - δ - b) - ln a, 0). Thresholds where exactly
    one of a, b is 0 say too little with this many models and are skipped; a perfect
    separation (a = b = 0) gives :data:`EPSILON_CAP`. Every distinct cut between the pooled
    margins is tried."""
    _check_ensembles(unlearned, oracle, least=2)
    u, o = unlearned.double(), oracle.double()
    cuts = torch.cat([u, o]).sort(0).values  # "margin >= cut" for each pooled value, plus one above all
    cuts = torch.cat([cuts, cuts[-1:] + 1])
    u_above = (u[None] >= cuts[:, None]).double().mean(1)  # (cuts, samples): share of unlearned called positive
    o_above = (o[None] >= cuts[:, None]).double().mean(1)
    best = torch.zeros(u.shape[1], dtype=torch.float64)
    for positive, negative in ((u_above, o_above), (o_above, u_above)):  # which side "margin >= t" names
        fpr, fnr = negative, 1 - positive
        # fmax skips the NaN of ln(1 - δ - 1) where a rate is 1; such a threshold's other term stands
        eps = torch.fmax((1 - delta - fpr).log() - fnr.log(), (1 - delta - fnr).log() - fpr.log())
        eps = eps.nan_to_num(nan=0.0).clamp_min(0)
        perfect = (fpr == 0) & (fnr == 0)
        informative = (fpr > 0) & (fnr > 0)
        eps = torch.where(perfect, torch.full_like(eps, EPSILON_CAP), torch.where(informative, eps, 0.0))
        best = torch.maximum(best, eps.max(0).values)
    return best.clamp(max=EPSILON_CAP)


def bucket_points(epsilons: torch.Tensor, models: int) -> torch.Tensor:
    """The challenge's points per sample: 2^-k for ε in [k/2, (k+1)/2), while (k+1)/2 <= ceil(ln(models - 1)); else 0."""
    if models < 2:
        raise ValueError(f"the challenge score needs at least 2 models per side, got {models}")
    buckets = 2 * math.ceil(math.log(models - 1))  # 0.5-wide buckets up to ceil(ln(models - 1))
    k = (epsilons.double() / 0.5).floor()
    return torch.where(k < buckets, 0.5 ** k, torch.zeros_like(k))


def challenge_score(unlearned: torch.Tensor, oracle: torch.Tensor, retain_accuracy: tuple[float, float],
                    test_accuracy: tuple[float, float]) -> dict:
    """The challenge's score from forget-set margins: ``forget_quality * RA_u/RA_r * TA_u/TA_r``.

    ``retain_accuracy`` and ``test_accuracy`` are ``(unlearned, oracle)`` mean accuracies (any
    unit, the same for both). The ε resolution is bounded by the smaller ensemble: ln(N - 1)."""
    models = min(unlearned.shape[0], oracle.shape[0])
    eps = attack_epsilons(unlearned, oracle)
    forget_quality = float(bucket_points(eps, models).mean())
    for name, (ours, theirs) in (("retain_accuracy", retain_accuracy), ("test_accuracy", test_accuracy)):
        if not theirs > 0:
            raise ValueError(f"{name}: the oracles' accuracy must be > 0, got {theirs}")
    utility = retain_accuracy[0] / retain_accuracy[1] * test_accuracy[0] / test_accuracy[1]
    return {"score": forget_quality * utility, "forget_quality": forget_quality, "utility": utility,
            "epsilon_mean": float(eps.mean())}
