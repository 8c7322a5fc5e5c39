"""FT: fine-tune on the retain set only (catastrophic forgetting of D_f)."""
from ..config import BaselineConfig
from ..training import epoch_batches, run_steps
from .common import cross_entropy_step, make_sgd
from .registry import register


@register("ft", BaselineConfig, "fine-tune on the retain set", reads=("epochs", "lr"))
def run(model, forget_loader, retain_loader, config: BaselineConfig, ctx):
    with ctx.stage("unlearn"):
        optimizer = make_sgd(model, config, config.lr)
        run_steps(model, optimizer, epoch_batches(retain_loader, config.epochs),
                  cross_entropy_step(ctx.parallel(model), config, ctx, ctx.generator("augment")),
                  total=config.epochs * len(retain_loader), desc="ft", **ctx.loop(len(retain_loader)))
