"""RL: random labels on the forget set plus CE on the retain set (SalUn's RL baseline).

``salun.py`` reuses :func:`random_label_unlearning` with a hard saliency mask.
"""
import torch
import torch.nn.functional as F

from ..config import BaselineConfig
from ..seeding import stream_generator
from ..training import run_steps
from .common import augmented, make_sgd, mixed_batches
from .registry import register


def random_label_unlearning(model, forget_loader, retain_loader, config, ctx, saliency=None, desc="rl",
                            saliency_storage="dense"):
    """Each epoch visits every forget batch (with fresh uniform random labels) and every
    retain batch (true labels) in a seeded random order; CE on each batch."""
    num_classes = model(next(iter(forget_loader))[0][:1].to(ctx.device)).shape[1]
    optimizer = make_sgd(model, config, config.lr, saliency, ctx.backend, saliency_storage)
    augment_generator, label_generator = ctx.generator("augment"), ctx.generator("random_labels")
    net = ctx.parallel(model)

    def loss_fn(tagged):
        tag, batch = tagged
        x, y = augmented(batch, config, ctx, augment_generator)
        if tag == "forget":
            y = torch.randint(0, num_classes, y.shape, generator=label_generator, device=ctx.device)
        return F.cross_entropy(net(x), y)

    total = config.epochs * (len(forget_loader) + len(retain_loader))
    batches = mixed_batches(forget_loader, retain_loader, config.epochs, stream_generator(ctx.seed, "batch_order"))
    run_steps(model, optimizer, batches, loss_fn, total=total, desc=desc,
              **ctx.loop(len(forget_loader) + len(retain_loader)))


@register("rl", BaselineConfig, "random labels on the forget set + CE on the retain set", reads=("epochs", "lr"))
def run(model, forget_loader, retain_loader, config: BaselineConfig, ctx):
    with ctx.stage("unlearn"):
        random_label_unlearning(model, forget_loader, retain_loader, config, ctx)
