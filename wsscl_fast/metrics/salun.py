"""Unlearning metrics, following the SalUn code base's protocol (docs/method.md).

UA = 100 - acc(D_f); RA = acc(D_r); TA = acc(test); MIA-efficacy = % of forget samples that
an SVC on the confidence p(y|x) calls non-members; Avg. Gap = mean |metric - Retrain's|.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from .. import distributed
from ..data import make_loader

GAP_METRICS = ("UA", "RA", "TA", "MIA")


@dataclass
class SplitPredictions:
    correct: np.ndarray  #: (N,) bool, prediction == label
    confidence: np.ndarray  #: (N,) float, softmax probability of the true label

    @property
    def accuracy(self) -> float:
        return 100.0 * float(self.correct.mean())


@torch.no_grad()
def predict_split(model: nn.Module, data, device=None, batch_size: int = 512) -> SplitPredictions:
    """Eval-mode predictions over ``data`` (Dataset or DataLoader of (x, y)), in order."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, confidence = [], []
    total = None
    if distributed.active() and isinstance(data, Dataset):  # torchrun: a strided shard per rank, gathered
        total = len(data)
        data = Subset(data, range(distributed.rank(), total, distributed.world_size()))
    on_device = torch.device(device) if torch.device(device).type == "cuda" else None
    for batch in make_loader(data, batch_size, shuffle=False, device=on_device, shard=False):
        x, y = batch[0].to(device), batch[1].to(device)
        probs = torch.softmax(model(x).float(), dim=1)
        correct.append(probs.argmax(dim=1) == y)
        confidence.append(probs.gather(1, y[:, None]).squeeze(1))
    model.train(was_training)
    correct, confidence = torch.cat(correct), torch.cat(confidence)
    if total is not None:
        correct = distributed.gather_in_order(correct.float(), total) > 0.5
        confidence = distributed.gather_in_order(confidence, total)
    return SplitPredictions(correct.cpu().numpy(), confidence.cpu().numpy())


def mia_efficacy(member_confidence: np.ndarray, nonmember_confidence: np.ndarray,
                 target_confidence: np.ndarray) -> float:
    """% of targets an RBF SVC (C=3, gamma="auto") on the confidence predicts as non-members.

    The SVC is fit on shadow members (label 1) and shadow non-members (label 0).
    """
    from sklearn.svm import SVC

    if len(member_confidence) == 0 or len(nonmember_confidence) == 0 or len(target_confidence) == 0:
        raise ValueError("mia_efficacy needs non-empty member, non-member and target sets")
    features = np.concatenate([member_confidence, nonmember_confidence]).reshape(-1, 1)
    labels = np.concatenate([np.ones(len(member_confidence)), np.zeros(len(nonmember_confidence))])
    classifier = SVC(C=3, gamma="auto", kernel="rbf").fit(features, labels)
    predicted_member = classifier.predict(np.asarray(target_confidence).reshape(-1, 1))
    return 100.0 * float(1.0 - predicted_member.mean())


def evaluate_unlearning(model: nn.Module, forget, retain, test, forgotten_test=None, device=None) -> dict:
    """UA, RA, TA, MIA (and, for class-wise forgetting, the forgotten class's test accuracy).

    Shadow members are the first |test| retain samples, shadow non-members the test set.
    """
    f, r, t = (predict_split(model, d, device) for d in (forget, retain, test))
    metrics = {
        "UA": 100.0 - f.accuracy,
        "RA": r.accuracy,
        "TA": t.accuracy,
        "MIA": mia_efficacy(r.confidence[: len(t.confidence)], t.confidence, f.confidence),
    }
    if forgotten_test is not None:
        metrics["forgotten_class_TA"] = predict_split(model, forgotten_test, device).accuracy
    return metrics


def avg_gap(metrics: dict, retrain_metrics: dict) -> float:
    """Mean of |UA - UA_rt|, |RA - RA_rt|, |TA - TA_rt|, |MIA - MIA_rt|; lower is better."""
    return float(np.mean([abs(metrics[k] - retrain_metrics[k]) for k in GAP_METRICS]))
