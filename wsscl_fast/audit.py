"""Evidence beyond SalUn's metrics (docs/audit.md): a relearning attack, a per-example
likelihood-ratio membership test and a linear probe, each to be read next to Retrain's value.

- Relearning: fine-tune a copy on the retain set alone, and another on k forget samples, for a
  fixed small budget; report the accuracy on the (other) forget samples afterwards.
- Membership (LiRA, Carlini et al. 2022, as U-LiRA uses it for unlearning, Hayes et al. 2025):
  reference models trained on random halves of a pool; per sample, the target's logit-scaled
  confidence phi = z_y - logsumexp_{j != y} z_j is scored by the likelihood ratio of
  N(mu_in, sigma_in) and N(mu_out, sigma_out) fitted on the references that did and did not
  train on it. TPR at a low FPR: forget samples called members, at the threshold where that
  fraction of known non-members (the holdout) is.
- Linear probe: a logistic regression on frozen features z of the retain set, scored on the
  forget set: what the features still know about the forget samples.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from .data import as_loader, dataset_names, to_tensors
from .metrics import predict_split
from .models import FeaturesAndLogits
from .seeding import stream_generator, stream_seed

LOW_FPRS = (0.01, 0.001)  #: the false-positive rates at which the membership test reports its TPR


@dataclass
class MembershipReference:
    """Reference models for the membership test: ``models[r]`` trained on the pool samples
    where ``members[r]`` (R, P) is True; ``names`` (P,) are the pool samples' ids
    (``ImageTensorDataset.names``), by which forget and non-member samples are found."""

    models: list
    names: tuple
    members: torch.Tensor

    def __post_init__(self):
        if self.members.dtype != torch.bool or self.members.shape != (len(self.models), len(self.names)):
            raise ValueError(f"members must be a bool tensor of shape (models, pool) = "
                             f"({len(self.models)}, {len(self.names)}), got {tuple(self.members.shape)} "
                             f"{self.members.dtype}")
        self._row = {name: i for i, name in enumerate(self.names)}

    def rows(self, data) -> torch.Tensor:
        """Pool rows of ``data``'s samples, refusing samples the pool does not have."""
        names = dataset_names(data)
        missing = [n for n in names if n not in self._row]
        if missing:
            raise ValueError(f"{len(missing)} sample(s) are not in the reference pool, e.g. {missing[:3]}")
        return torch.tensor([self._row[n] for n in names], dtype=torch.long)


@dataclass
class Audit:
    """What the audit runs. ``references`` enables the membership test (it needs a holdout:
    unseen samples that the pool holds); relearning and the probe always run."""

    references: MembershipReference | None = None
    relearn_epochs: int = 1  #: passes over the retain set in the retain-only relearning attack
    relearn_forget_fraction: float = 0.01  #: k = this fraction of the forget set ...
    relearn_forget_min: int = 10  #: ... but at least this many samples
    relearn_forget_steps: int = 20  #: full-batch steps on the k forget samples
    relearn_lr: float = 0.01
    batch_size: int = 128
    probe_samples: int = 5000  #: at most this many retain samples fit the probe


def as_audit(audit) -> Audit | None:
    """The ``audit=`` argument of unlearn()/compare(): an Audit, True (the defaults) or False/None."""
    if audit is True:
        return Audit()
    if audit is None or audit is False or isinstance(audit, Audit):
        return audit or None
    raise TypeError(f"audit must be True, False or an Audit, got {type(audit).__name__}")


def _fine_tuned(model: nn.Module, batches, lr: float, device) -> nn.Module:
    """A copy of ``model`` after SGD (momentum 0.9) on ``batches`` of (x, y), CE loss."""
    attacked = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.SGD(attacked.parameters(), lr=lr, momentum=0.9)
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(attacked(x.to(device)), y.to(device)).backward()
        optimizer.step()
    return attacked.eval()


def relearning_attack(model: nn.Module, forget, retain, audit: Audit, seed: int = 0, device=None) -> dict:
    """Forget-set accuracy (%) after relearning from the retain set alone
    (``relearn_retain_FA``) and, on the other forget samples, after relearning from k of them
    (``relearn_k_FA``, k in ``relearn_k``)."""
    device = device or next(model.parameters()).device
    generator = stream_generator(seed, "relearn_forget_samples")
    loader = as_loader(retain, audit.batch_size, shuffle=True, seed=stream_seed(seed, "relearn_retain_loader"))
    batches = (batch[:2] for _ in range(audit.relearn_epochs) for batch in loader)
    after_retain = _fine_tuned(model, batches, audit.relearn_lr, device)
    n = len(forget)
    k = min(n - 1, max(audit.relearn_forget_min, round(audit.relearn_forget_fraction * n)))
    if k < 1:
        raise ValueError(f"the relearning attack needs at least 2 forget samples, got {n}")
    order = torch.randperm(n, generator=generator).tolist()
    images, labels = to_tensors(Subset(forget, order[:k]))
    after_k = _fine_tuned(model, [(images, labels)] * audit.relearn_forget_steps, audit.relearn_lr, device)
    return {"relearn_retain_FA": predict_split(after_retain, forget, device).accuracy,
            "relearn_k_FA": predict_split(after_k, Subset(forget, order[k:]), device).accuracy, "relearn_k": k}


@torch.no_grad()
def features(model: nn.Module, data, device, head_module: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z (N, D), labels (N,)): the input of the final Linear over ``data``, eval mode."""
    net = FeaturesAndLogits(model, head_module).eval()
    zs, ys = [], []
    for batch in as_loader(data, 512, shuffle=False):
        zs.append(net(batch[0].to(device))[0].float().cpu())
        ys.append(batch[1])
    return torch.cat(zs), torch.cat(ys)


def linear_probe(model: nn.Module, forget, retain, audit: Audit, seed: int = 0, device=None,
                 head_module: str | None = None) -> dict:
    """Forget-set accuracy (%) of a logistic regression fit on frozen retain features
    (``probe_FA``): near the original's accuracy means the features still separate the forget
    samples, whatever the head says."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    device = device or next(model.parameters()).device
    was_training = model.training
    rows = torch.randperm(len(retain), generator=stream_generator(seed, "probe_samples"))[:audit.probe_samples]
    z_r, y_r = features(model, Subset(retain, rows.tolist()), device, head_module)
    z_f, y_f = features(model, forget, device, head_module)
    model.train(was_training)
    scaler = StandardScaler().fit(z_r.numpy())
    probe = LogisticRegression(max_iter=500).fit(scaler.transform(z_r.numpy()), y_r.numpy())
    return {"probe_FA": 100.0 * float((probe.predict(scaler.transform(z_f.numpy())) == y_f.numpy()).mean())}


@torch.no_grad()
def logit_confidence(model: nn.Module, data, device) -> torch.Tensor:
    """phi = log p_y - log(1 - p_y) = z_y - logsumexp_{j != y} z_j per sample (N,), eval mode."""
    was_training = model.training
    model.eval()
    phis = []
    for batch in as_loader(data, 512, shuffle=False):
        logits = model(batch[0].to(device)).double()
        y = batch[1].to(device)
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], float("-inf")).logsumexp(dim=1)
        phis.append((true - others).cpu())
    model.train(was_training)
    return torch.cat(phis)


def lira_scores(target: torch.Tensor, reference: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Log-likelihood ratio of membership per sample (N,).

    target (N,): phi under the audited model; reference (R, N): phi under each reference
    model; members (R, N): whether reference r trained on sample n. Means are per sample, the
    IN and OUT variances are pooled over all samples (few references make per-sample
    variances unreliable; LiRA's fixed-variance variant)."""
    if not (members.any(0).all() and (~members).any(0).all()):
        raise ValueError("every sample needs at least one reference model that trained on it and one that did not")
    m = members.double()
    mu_in = (reference * m).sum(0) / m.sum(0)
    mu_out = (reference * (1 - m)).sum(0) / (1 - m).sum(0)
    var_in = (((reference - mu_in) ** 2) * m).sum() / m.sum().clamp_min(1)
    var_out = (((reference - mu_out) ** 2) * (1 - m)).sum() / (1 - m).sum().clamp_min(1)
    var_in, var_out = var_in.clamp_min(1e-6), var_out.clamp_min(1e-6)
    log_in = -0.5 * ((target - mu_in) ** 2 / var_in + var_in.log())
    log_out = -0.5 * ((target - mu_out) ** 2 / var_out + var_out.log())
    return log_in - log_out


def tpr_at_fpr(positive: torch.Tensor, negative: torch.Tensor, fpr: float) -> float:
    """% of ``positive`` scores above the threshold that ``fpr`` of ``negative`` scores exceed."""
    threshold = torch.quantile(negative.double(), 1 - fpr)
    return 100.0 * float((positive.double() > threshold).double().mean())


def membership_test(model: nn.Module, forget, nonmembers, references: MembershipReference, device=None) -> dict:
    """LiRA TPR (%) on the forget set at each of :data:`LOW_FPRS`, calibrated on ``nonmembers``
    (samples the model never trained on, that the reference pool holds), and the per-sample
    scores of the forget set (``lira_scores``, for plots)."""
    device = device or next(model.parameters()).device
    scores = {}
    for name, data in (("forget", forget), ("nonmembers", nonmembers)):
        rows = references.rows(data)
        reference = torch.stack([logit_confidence(ref.to(device), data, device) for ref in references.models])
        scores[name] = lira_scores(logit_confidence(model, data, device), reference, references.members[:, rows])
    result = {f"lira_tpr@{fpr:g}": tpr_at_fpr(scores["forget"], scores["nonmembers"], fpr) for fpr in LOW_FPRS}
    return {**result, "lira_scores": scores["forget"].float().tolist()}


def run_audit(model: nn.Module, forget, retain, audit: Audit, holdout=None, seed: int = 0, device=None,
              head_module: str | None = None) -> dict:
    """Every test of the audit on one model: relearning, the linear probe and, with
    ``audit.references`` and a ``holdout``, the membership test; ``audit_seconds`` is its cost."""
    start = time.perf_counter()
    result = {**relearning_attack(model, forget, retain, audit, seed, device),
              **linear_probe(model, forget, retain, audit, seed, device, head_module)}
    if audit.references is not None:
        if holdout is None:
            raise ValueError("the membership test needs a holdout of non-members (the validation split) to set "
                             "its threshold")
        result.update(membership_test(model, forget, holdout, audit.references, device))
    return {**result, "audit_seconds": time.perf_counter() - start}


def reference_halves(pool_size: int, count: int, seed: int = 0) -> torch.Tensor:
    """(count, pool_size) bool membership of ``count`` reference models: pairs of complementary
    random halves, so every sample is in exactly half of the models."""
    if count < 2 or count % 2:
        raise ValueError(f"the membership test needs an even number >= 2 of reference models, got {count}")
    generator = torch.Generator().manual_seed(seed)
    halves = []
    for _ in range(count // 2):
        half = torch.zeros(pool_size, dtype=torch.bool)
        half[torch.randperm(pool_size, generator=generator)[: pool_size // 2]] = True
        halves += [half, ~half]
    return torch.stack(halves)


def train_references(build_model, pool, config, count: int, seed: int = 0, device="cpu",
                     progress: bool = True) -> MembershipReference:
    """Train ``count`` models from ``build_model()`` with ``config`` (a TrainConfig, like the
    original's) on the halves of :func:`reference_halves` over ``pool``."""
    from .training import train_model

    members = reference_halves(len(pool), count, seed)
    models = []
    for r, half in enumerate(members):
        torch.manual_seed(stream_seed(seed, f"reference {r} init"))
        models.append(train_model(build_model(), Subset(pool, half.nonzero().flatten().tolist()), config,
                                  torch.device(device), seed=stream_seed(seed, f"reference {r}"), progress=progress, desc=f"reference {r}"))
    return MembershipReference(models, dataset_names(pool), members)
