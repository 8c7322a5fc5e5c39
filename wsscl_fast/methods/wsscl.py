"""WSS-CL: weight-saliency soft-guided contrastive unlearning (docs/method.md).

stage 0  saliency s from |sum of forget-set gradients| (soft by default)
stage 1  forgetting in logit space: maximise the bounded KL to aggregated pseudo-labels
stage 2  contrastive fine-tuning: CE(retain) + lambda * InfoNCE(forget image, its view; retain)
         + the stage-1 term, normalised by the bounds
Stages 1 and 2 update the weights with saliency-weighted SGD. With ``checkpoint_choice="holdout"``
the run returns the given model or an epoch's, whichever is closest to unseen data
(methods/checkpoint_choice.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from .. import distributed
from ..config import WSSCLConfig
from ..data import augment_batch, dataset_labels, to_tensors
from ..models import FeaturesAndLogits
from ..ops import infonce_loss
from ..saliency import compute_saliency
from ..seeding import stream_generator
from ..saliency_storage import storage_for
from ..training import cycle, run_steps
from .checkpoint_choice import CheckpointChoice
from .common import augmented, make_sgd
from .registry import register


@torch.no_grad()
def aggregated_pseudo_labels(model, images: torch.Tensor, config: WSSCLConfig, generator, batch_size: int = 512):
    """q_i = mean over K augmented views of softmax(f(aug x_i) / T), from the frozen model. (N, C)"""
    model.eval()
    labels = []
    for chunk in images.split(batch_size):
        views = [augment_batch(chunk, config.view_pad, config.view_flip, generator) for _ in range(config.num_views)]
        probs = torch.softmax(model(torch.cat(views)).float() / config.pseudo_label_temperature, dim=1)
        labels.append(probs.view(config.num_views, chunk.shape[0], -1).mean(dim=0))
    return torch.cat(labels)


@torch.no_grad()
def sample_losses(model, data, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample of ``data``: (-log p(true label), mean over wrong labels of -log p(label)).

    On unseen data the first says how far from its label an unseen sample of a known class
    sits; the second how little probability a class gets on samples that are not of it,
    which is what a class the model never saw looks like.
    """
    model.eval()
    images, labels = data if isinstance(data, tuple) else to_tensors(data)
    true_nll, wrong_nll = [], []
    for x, y in zip(images.split(512), labels.split(512)):
        log_probs = torch.log_softmax(model(x.to(device)).float(), dim=1)
        nll = -log_probs.gather(1, y.to(device)[:, None]).squeeze(1)
        true_nll.append(nll)
        wrong_nll.append((-log_probs.sum(dim=1) - nll) / (log_probs.shape[1] - 1))
    return torch.cat(true_nll), torch.cat(wrong_nll)


def matched_quantiles(reference: torch.Tensor, ranks_of: torch.Tensor) -> torch.Tensor:
    """For each value of ``ranks_of``, the quantile of ``reference`` at its rank: the k-th
    smallest of ``ranks_of`` gets the (k + 0.5)/n quantile, so the two distributions match."""
    n = ranks_of.numel()
    ranks = torch.empty(n, dtype=torch.long, device=ranks_of.device)
    ranks[ranks_of.argsort()] = torch.arange(n, device=ranks_of.device)
    levels = (ranks.double() + 0.5) / n
    return torch.quantile(reference.double().cpu(), levels.cpu()).to(ranks_of.device, torch.float32)


FALLBACK_REFERENCE_SAMPLES = 2000  #: retain samples whose wrong-label losses calibrate removed classes without a holdout


def kl_bounds(model, forget_images, forget_labels, retain_loader, config: WSSCLConfig, ctx) -> torch.Tensor:
    """Per-forget-sample KL bound (N,). A number in the config applies to all samples.

    ``"auto"`` (our reading of "bounded"): forget samples should end up looking like unseen
    samples. As q_i is close to one-hot on training data, KL(q_i || p) is close to the
    sample's cross-entropy, so the bounds are cross-entropies of unseen data matched by rank:
    the forget sample the original model finds hardest gets the highest reference loss.

    - Samples of a class the retain set still has: the holdout's true-label losses (unseen
      samples of a known class). Without a holdout: ``kl_bound_fallback`` for all of them.
    - Samples of a class the retain set no longer has (a never-seen class): wrong-label
      losses, -mean over the other labels of log p(label), of the holdout, or without one of up
      to ``FALLBACK_REFERENCE_SAMPLES`` retain samples (how little probability the model gives a
      class on samples that are not of it).

    Only the holdout (a validation split) is ever used, never the test set.
    """
    if config.kl_bound != "auto":
        return torch.full(forget_labels.shape, float(config.kl_bound), device=ctx.device)
    retain_labels = dataset_labels(retain_loader)
    removed = ~torch.isin(forget_labels, retain_labels.to(forget_labels.device).unique())
    forget_nll, _ = sample_losses(model, (forget_images, forget_labels), ctx.device)
    if ctx.holdout is not None:
        reference_true, reference_wrong = sample_losses(model, ctx.holdout, ctx.device)
        seen = matched_quantiles(reference_true, forget_nll)
        ctx.info.update(kl_bound_seen_class_mean=float(reference_true.mean()))
    else:
        rows = torch.randperm(len(retain_labels), generator=stream_generator(ctx.seed, "fallback_reference"))
        sample = Subset(retain_loader.dataset, rows[:FALLBACK_REFERENCE_SAMPLES].tolist())
        reference_wrong = sample_losses(model, sample, ctx.device)[1] if removed.any() else None
        seen = torch.full_like(forget_nll, config.kl_bound_fallback)
    bounds = torch.where(removed, matched_quantiles(reference_wrong, forget_nll), seen) if removed.any() else seen
    if removed.any():
        ctx.info.update(kl_bound_removed_class_mean=float(reference_wrong.mean()))
    ctx.info.update(kl_bound_source="holdout" if ctx.holdout is not None else "fallback",
                    removed_class_samples=int(removed.sum()))
    return bounds


def bounded_forgetting_loss(forget_logits: torch.Tensor, pseudo_labels: torch.Tensor, bounds: torch.Tensor,
                            retain_logits: torch.Tensor | None = None, retain_targets: torch.Tensor | None = None,
                            sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """-mean_i w_i min(KL(q_i || softmax(z_i)), b_i), plus CE(retain) when retain logits are given.

    forget_logits z: (B, C); pseudo_labels q: (B, C), rows summing to 1; bounds b: (B,);
    sample_weights w: (B,), 1 when None. reference.forgetting_loss_ref is the plain copy that
    tests compare against."""
    q = pseudo_labels.float()
    kl = (torch.xlogy(q, q) - q * F.log_softmax(forget_logits.float(), dim=1)).sum(dim=1)
    bounded = torch.minimum(kl, bounds.to(kl.dtype))
    if sample_weights is not None:
        bounded = bounded * sample_weights
    loss = -bounded.mean()
    if retain_logits is not None:
        loss = loss + F.cross_entropy(retain_logits.float(), retain_targets)
    return loss


def _stage_optimizer(model, config: WSSCLConfig, lr: float, saliency, ctx):
    """Saliency-weighted SGD at ``lr``, the saliency in the storage its mode uses."""
    return make_sgd(model, config, lr, saliency, ctx.backend, storage_for(config.saliency_mode))


def forget_batches(num_forget: int, batch_size: int, generator: torch.Generator):
    """Endless seeded shuffled passes over forget-set row indices, in batches. Under torchrun
    every rank draws the same global batch and keeps its share (rows r, r + W, ...)."""
    rank, world = distributed.rank(), distributed.world_size()
    while True:
        order = torch.randperm(num_forget, generator=generator, device=generator.device)
        # a global batch smaller than the world would leave a rank without rows
        yield from (batch[rank::world] for batch in order.split(batch_size) if batch.shape[0] >= world)


def epoch_ends(choice: CheckpointChoice | None, model, stage: str, steps_per_epoch: int):
    """run_steps' ``on_epoch_end``: each epoch's model becomes a candidate of ``choice`` (None: no hook)."""
    if choice is None:
        return None
    return lambda done: choice.consider(model, f"{stage} epoch {-(-done // steps_per_epoch)}")


def forgetting_stage(net, model, forget_images, targets, retain_loader, saliency, config: WSSCLConfig, ctx,
                     choice: CheckpointChoice | None = None) -> None:
    """Stage 1: minimise -mean min(KL(q || p_theta(x_f)), bound) + alpha * CE(retain), one forward."""
    pseudo_labels, bounds = targets
    optimizer = _stage_optimizer(model, config, config.forget_lr, saliency, ctx)
    augment_generator = ctx.generator("forget_augment")
    steps_per_epoch = -(-forget_images.shape[0] // config.forget_batch_size)
    batches = zip(forget_batches(forget_images.shape[0], config.forget_batch_size, ctx.generator("forget_batches")),
                  cycle(retain_loader))

    def loss_fn(pair):
        index, retain_batch = pair
        x_r, y_r = augmented(retain_batch, config, ctx, augment_generator)
        _, logits = net(torch.cat([forget_images[index], x_r]))
        logits_f, logits_r = logits.split([index.shape[0], x_r.shape[0]])
        return bounded_forgetting_loss(logits_f, pseudo_labels[index], bounds[index], logits_r, y_r)

    run_steps(model, optimizer, batches, loss_fn, total=config.forget_epochs * steps_per_epoch,
              desc="wsscl forget", on_epoch_end=epoch_ends(choice, model, "forget", steps_per_epoch),
              **ctx.loop(steps_per_epoch))


def contrastive_stage(net, model, forget_images, targets, retain_loader, saliency, config: WSSCLConfig, ctx,
                      choice: CheckpointChoice | None = None) -> None:
    """Stage 2: CE(retain) + lambda * InfoNCE(z(x_f), z(aug x_f); negatives z(x_r)) + ``finetune_forget_weight``
    times stage 1's bounded KL term on x_f divided by each sample's bound (the adversarial part).

    One forward of [x_r, x_f, aug x_f] serves all terms: the un-augmented forget image is the
    anchor and the KL input (as in stage 1 and evaluation), its augmented view the positive; z
    are the L2-normalised inputs of the final Linear. Under torchrun the negatives of all ranks
    are gathered."""
    pseudo_labels, bounds = targets
    optimizer = _stage_optimizer(model, config, config.finetune_lr, saliency, ctx)
    augment_generator = ctx.generator("finetune_augment")
    batches = zip(cycle(retain_loader), forget_batches(
        forget_images.shape[0], config.finetune_forget_batch_size, ctx.generator("finetune_forget_batches")))
    group = torch.distributed.group.WORLD if distributed.active() else None
    total = config.finetune_epochs * len(retain_loader)

    def loss_fn(pair):
        retain_batch, index = pair
        x_r, y_r = augmented(retain_batch, config, ctx, augment_generator)
        x_f = forget_images[index]
        x_view = augment_batch(x_f, config.view_pad, config.view_flip, augment_generator)
        z, logits = net(torch.cat([x_r, x_f, x_view]))
        sizes = [x_r.shape[0], x_f.shape[0], x_view.shape[0]]
        z_r, z_f, z_view = z.split(sizes)
        logits_r, logits_f = logits.split(sizes)[:2]
        contrastive = infonce_loss(z_f, z_view, z_r, config.temperature, backend=ctx.backend, check_inputs=False,
                                   group=group)
        loss = F.cross_entropy(logits_r, y_r) + config.contrastive_weight * contrastive
        if config.finetune_forget_weight > 0:
            loss = loss + config.finetune_forget_weight * bounded_forgetting_loss(
                logits_f, pseudo_labels[index], bounds[index], sample_weights=1 / bounds[index])
        return loss

    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
                 if config.finetune_schedule == "cosine" else None)
    run_steps(model, optimizer, batches, loss_fn, total=total, desc="wsscl contrastive", scheduler=scheduler,
              on_epoch_end=epoch_ends(choice, model, "contrastive", len(retain_loader)), **ctx.loop(len(retain_loader)))


@register("wsscl", WSSCLConfig, "WSS-CL: soft saliency, bounded KL forgetting, contrastive fine-tuning")
def run(model, forget_loader, retain_loader, config: WSSCLConfig, ctx):
    net = FeaturesAndLogits(model, config.head_module)  # refuses a model without a final Linear, before any work
    forget_images, forget_labels = (t.to(ctx.device) for t in to_tensors(forget_loader.dataset))
    with ctx.stage("targets"):  # the given model's scores, pseudo-labels over num_views views, the KL bounds
        choice = checkpoint_choice(model, forget_images, forget_labels, retain_loader, config, ctx)
        if choice is not None and choice.at_target():  # nothing to forget: no saliency, no training
            ctx.info.update(checkpoint_choice=dict(choice.restore_best(model), skipped_training=True))
            return
        targets = (aggregated_pseudo_labels(model, forget_images, config, ctx.generator("pseudo_label_views")),
                   kl_bounds(model, forget_images, forget_labels, retain_loader, config, ctx))
    with ctx.stage("saliency"):  # leaves the model's weights, gradients and mode as they were
        saliency = compute_saliency(model, forget_loader, config.saliency_ratio, config.saliency_mode,
                                    device=ctx.device, backend=ctx.backend, saliency_storage=storage_for(config.saliency_mode))
    net = ctx.parallel(net)
    with ctx.stage("forget"):
        if config.forget_epochs:
            forgetting_stage(net, model, forget_images, targets, retain_loader, saliency, config, ctx, choice)
    if config.finetune_epochs:
        with ctx.stage("contrastive"):
            contrastive_stage(net, model, forget_images, targets, retain_loader, saliency, config, ctx, choice)
    if choice is not None:
        ctx.info.update(checkpoint_choice=dict(choice.restore_best(model), skipped_training=False))


RETAIN_SCORE_SAMPLES = 1000  #: retain samples (a seeded draw) on which the checkpoint choice measures a_r


def checkpoint_choice(model, forget_images, forget_labels, retain_loader, config: WSSCLConfig, ctx):
    """The holdout-calibrated :class:`CheckpointChoice` (scoring the given model now), or None for
    ``checkpoint_choice="last"`` or without a holdout; a resumed run gets its saved candidates back."""
    if config.checkpoint_choice == "last":
        return None
    if ctx.holdout is None:
        ctx.info.update(checkpoint_choice="last: no holdout to calibrate the choice on")
        return None
    retain = retain_loader.dataset
    rows = torch.randperm(len(retain), generator=stream_generator(ctx.seed, "checkpoint_choice_retain"))
    retain_sample = Subset(retain, rows[:RETAIN_SCORE_SAMPLES].tolist())
    choice = CheckpointChoice(model, forget_images, forget_labels, dataset_labels(retain_loader).unique(),
                              ctx.holdout, retain_sample, ctx.device)
    if ctx.run_state is not None:
        ctx.run_state.attach("wsscl_checkpoint_choice", choice)
    return choice
