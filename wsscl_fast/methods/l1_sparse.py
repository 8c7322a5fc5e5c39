"""l1-sparse: FT plus alpha_t * ||theta||_1, alpha decaying linearly from l1_alpha to 0."""
import torch.nn.functional as F

from ..config import BaselineConfig
from ..training import epoch_batches, run_steps
from .common import augmented, make_sgd
from .registry import register


@register("l1_sparse", BaselineConfig, "fine-tune with a decaying l1 penalty")
def run(model, forget_loader, retain_loader, config: BaselineConfig, ctx):
    with ctx.stage("unlearn"):
        optimizer = make_sgd(model, config, config.lr)
        generator, total = ctx.generator(), config.epochs * len(retain_loader)
        step = {"count": 0}

        def loss_fn(batch):
            alpha = config.l1_alpha * (1 - step["count"] // len(retain_loader) / config.epochs)
            step["count"] += 1
            x, y = augmented(batch, config, ctx, generator)
            return F.cross_entropy(model(x), y) + alpha * sum(p.abs().sum() for p in model.parameters())

        run_steps(model, optimizer, epoch_batches(retain_loader, config.epochs), loss_fn, total=total,
                  desc="l1_sparse", progress=ctx.progress)
