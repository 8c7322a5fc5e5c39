"""l1-sparse: FT plus alpha_t * ||theta||_1, alpha decaying linearly from l1_alpha to 0."""
import torch.nn.functional as F

from ..config import BaselineConfig
from ..training import run_steps
from .common import augmented, make_sgd
from .registry import register


@register("l1_sparse", BaselineConfig, "fine-tune with a decaying l1 penalty", reads=("epochs", "lr", "l1_alpha"))
def run(model, forget_loader, retain_loader, config: BaselineConfig, ctx):
    with ctx.stage("unlearn"):
        optimizer = make_sgd(model, config, config.lr)
        generator, net = ctx.generator("augment"), ctx.parallel(model)
        batches = ((epoch, batch) for epoch in range(config.epochs) for batch in retain_loader)

        def loss_fn(epoch_and_batch):
            epoch, batch = epoch_and_batch
            alpha = config.l1_alpha * (1 - epoch / config.epochs)  # SalUn's linear decay per epoch
            x, y = augmented(batch, config, ctx, generator)
            return F.cross_entropy(net(x), y) + alpha * sum(p.abs().sum() for p in model.parameters())

        run_steps(model, optimizer, batches, loss_fn, total=config.epochs * len(retain_loader),
                  desc="l1_sparse", **ctx.loop(len(retain_loader)))
