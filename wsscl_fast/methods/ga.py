"""GA: gradient ascent on the forget set's cross-entropy."""
from ..config import BaselineConfig
from ..training import epoch_batches, run_steps
from .common import cross_entropy_step, make_sgd
from .registry import register


@register("ga", BaselineConfig, "gradient ascent on the forget set", reads=("ga_epochs", "ga_lr"))
def run(model, forget_loader, retain_loader, config: BaselineConfig, ctx):
    with ctx.stage("unlearn"):
        optimizer = make_sgd(model, config, config.ga_lr)
        ce = cross_entropy_step(ctx.parallel(model), config, ctx, ctx.generator("augment"))
        run_steps(model, optimizer, epoch_batches(forget_loader, config.ga_epochs), lambda batch: -ce(batch),
                  total=config.ga_epochs * len(forget_loader), desc="ga", **ctx.loop(len(forget_loader)))
