"""WSS-CL's holdout-calibrated checkpoint choice: keep the epoch whose model sits closest to
what a model that never saw the forget set would show (``checkpoint_choice="holdout"``).

Candidates: the model given to the run, and the model at the end of every epoch of stages 1
and 2. For each, with the holdout (unseen data; never the test set):

    e_f   error on the forget set
    a_h   accuracy on the holdout samples of the classes the retain set still has
    a_r   accuracy on a fixed sample of the retain set

The target forget error is what unseen data shows: per forget sample, the given model's holdout
error on that sample's class when the retain set still has the class, 1 when it does not (a
class a model never saw is never predicted); T is their mean over the forget set. Both sides are
measured: a model that never saw the forget set would show a forget error e_f with variance
sum_i t_i (1 - t_i) / N^2 (t_i the per-sample targets, N forget samples), and T itself comes from
n_c holdout samples per class, with variance sum_c (N_c / N)^2 t_c (1 - t_c) / n_c (N_c forget
samples of class c). s is the half-width of the two-sided 95% acceptance region of e_f - T,
s = 1.96 sqrt(both) (at least 1/N): such a model lands outside T +- s one time in twenty
(version 4 used one standard error of e_f alone: one time in three). The score counts only the
distance beyond that,

    score = max(0, |e_f - T| - s) + max(0, a_h(given) - a_h) + max(0, a_r(given) - a_r)

the forget set's distance from "unseen" that the sample can tell, plus the accuracy the run has
cost on unseen data and on the data that stays, all as error rates: a Retrain keeps both (it
trains on the retain set), so what a candidate loses on either is harm, and accuracy is not
traded for a forget error that is nearer T only within the noise. The lowest score is kept (the
later one on a tie), and the run returns it. Forgetting that overshoots "unseen", and repair
that has not yet repaired, both score worse. A given model that scores 0 (its forget error is
within s of T) cannot be beaten, so the run returns it without training (``at_target``).
(SCRUB+R picks the checkpoint whose forget error is closest to a holdout's; this adds the
accuracy lost on unseen and retained data, so that damage is not a way to reach the target.)
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..data import to_tensors

#: the forget term's acceptance region: two-sided 95% for a model that never saw the forget set
ACCEPTANCE_Z = 1.96


@torch.no_grad()
def predicted(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """argmax of the model's logits per image, (N,), in eval mode (the caller's mode restored)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(chunk.to(device)).argmax(dim=1) for chunk in images.split(batch_size)])
    model.train(was_training)
    return out


class CheckpointChoice:
    """Scores each candidate as it comes (``consider``) and keeps the best one's weights.

    forget_labels: (N,) labels of the forget set; retained_classes: (K,) the classes the retain
    set still has; holdout: a labelled Dataset of unseen data; retain_sample: a labelled Dataset
    of retain samples."""

    def __init__(self, model: nn.Module, forget_images: torch.Tensor, forget_labels: torch.Tensor,
                 retained_classes: torch.Tensor, holdout, retain_sample, device: torch.device):
        holdout_images, holdout_labels = to_tensors(holdout)
        retain_images, retain_labels = to_tensors(retain_sample)
        keep = torch.isin(holdout_labels, retained_classes.cpu())
        if not keep.any():
            raise ValueError("checkpoint_choice='holdout': the holdout has no sample of a class the retain set "
                             "still has, so it cannot say what unseen data of those classes looks like")
        self.forget_images, self.forget_labels = forget_images, forget_labels.to(device)
        self.holdout_images, self.holdout_labels = holdout_images[keep], holdout_labels[keep].to(device)
        self.retain_images, self.retain_labels = retain_images, retain_labels.to(device)
        self.device = device
        self.target, variance = self._target_error(model, retained_classes.to(device))
        self.tolerance = max(ACCEPTANCE_Z * math.sqrt(variance), 1 / self.forget_labels.numel())
        self.reference_accuracy = self._accuracies(model)
        self.best_score, self.best_state, self.best_at = float("inf"), None, None
        self.candidates: list[dict] = []
        self.consider(model, "given model")

    def _accuracies(self, model) -> tuple[float, float]:
        """(a_h, a_r) of ``model``."""
        return tuple(float((predicted(model, images, self.device) == labels).float().mean())
                     for images, labels in ((self.holdout_images, self.holdout_labels),
                                            (self.retain_images, self.retain_labels)))

    def _target_error(self, model, retained_classes: torch.Tensor) -> tuple[float, float]:
        """(T, the variance of e_f - T for a model that never saw the forget set). T: mean over
        forget samples of the holdout error of their class (1 for a removed class; the whole
        holdout's error for a class the holdout lacks)."""
        wrong = (predicted(model, self.holdout_images, self.device) != self.holdout_labels).float()
        n = self.forget_labels.numel()
        per_sample = torch.ones(self.forget_labels.shape, device=self.device)
        target_variance = 0.0
        for label in self.forget_labels.unique():
            if not torch.isin(label, retained_classes):
                continue  # a removed class: its target 1 is exact
            of_class = self.holdout_labels == label
            measured_on = wrong[of_class] if of_class.any() else wrong
            rate = float(measured_on.mean())
            in_forget = self.forget_labels == label
            per_sample[in_forget] = rate
            target_variance += (int(in_forget.sum()) / n) ** 2 * rate * (1 - rate) / measured_on.numel()
        forget_variance = float((per_sample * (1 - per_sample)).sum()) / n ** 2
        return float(per_sample.mean()), forget_variance + target_variance

    def at_target(self) -> bool:
        """Whether the given model scores 0 (its forget error within ``tolerance`` of T): no
        candidate can score lower."""
        return self.candidates[0]["score"] == 0.0

    def consider(self, model: nn.Module, at: str) -> None:
        """Score ``model`` as it is now; keep a copy of its weights when it is the best so far."""
        forget_error = float((predicted(model, self.forget_images, self.device) != self.forget_labels).float().mean())
        accuracies = self._accuracies(model)
        accuracy_lost = sum(max(0.0, given - now) for given, now in zip(self.reference_accuracy, accuracies))
        score = max(0.0, abs(forget_error - self.target) - self.tolerance) + accuracy_lost
        self.candidates.append(dict(at=at, forget_error=forget_error, holdout_accuracy=accuracies[0],
                                    retain_accuracy=accuracies[1], score=score))
        if score <= self.best_score:
            self.best_score, self.best_at = score, at
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore_best(self, model: nn.Module) -> dict:
        """Load the best candidate's weights into ``model``; returns what was chosen, for the run's info."""
        model.load_state_dict(self.best_state)
        return dict(target_forget_error=self.target, forget_error_tolerance=self.tolerance,
                    given_holdout_accuracy=self.reference_accuracy[0],
                    given_retain_accuracy=self.reference_accuracy[1],
                    chosen=self.best_at, candidates=list(self.candidates))

    # a resumable run saves and restores the candidates seen so far (runstate.RunState.attach)
    def state_dict(self) -> dict:
        return dict(best_score=self.best_score, best_state=self.best_state, best_at=self.best_at,
                    candidates=self.candidates)

    def load_state_dict(self, state: dict) -> None:
        self.best_score, self.best_state, self.best_at = state["best_score"], state["best_state"], state["best_at"]
        self.candidates = list(state["candidates"])
