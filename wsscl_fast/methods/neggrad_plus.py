"""NegGrad+: alpha * CE(retain batch) - (1 - alpha) * CE(forget batch), one step per pair."""
import torch
import torch.nn.functional as F

from ..config import NegGradPlusConfig
from ..training import cycle, epoch_batches, run_steps
from .common import augmented, make_sgd
from .registry import register


@register("neggrad_plus", NegGradPlusConfig, "retain CE minus forget CE (Kurmanji et al. 2023)")
def run(model, forget_loader, retain_loader, config: NegGradPlusConfig, ctx):
    """Each retain batch (``epochs`` passes) is paired with the next batch of the cycled forget
    set; both go through one forward."""
    with ctx.stage("unlearn"):
        optimizer = make_sgd(model, config, config.lr)
        generator, net = ctx.generator("augment"), ctx.parallel(model)
        pairs = zip(epoch_batches(retain_loader, config.epochs), cycle(forget_loader))

        def loss_fn(pair):
            (x_r, y_r), (x_f, y_f) = (augmented(batch, config, ctx, generator) for batch in pair)
            logits = net(torch.cat([x_r, x_f]))
            retain_ce = F.cross_entropy(logits[:len(y_r)], y_r)
            forget_ce = F.cross_entropy(logits[len(y_r):], y_f)
            return config.alpha * retain_ce - (1 - config.alpha) * forget_ce

        run_steps(model, optimizer, pairs, loss_fn, total=config.epochs * len(retain_loader),
                  desc="neggrad_plus", **ctx.loop(len(retain_loader)))
