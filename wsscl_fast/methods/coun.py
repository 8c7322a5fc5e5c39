"""CoUn: fine-tune on the retain set with CE plus a SimCLR contrastive term between two views of
each retain batch. The forget set is never used: its samples drift with the retain
representations toward the retain clusters most similar to them."""
import torch
import torch.nn.functional as F

from ..config import CoUnConfig
from ..data import augment_batch
from ..models import FeaturesAndLogits
from ..training import epoch_batches, run_steps
from .common import make_sgd, nt_xent
from .registry import register


@register("coun", CoUnConfig, "retain CE + SimCLR InfoNCE on retain views (Khalil et al. 2025)")
def run(model, forget_loader, retain_loader, config: CoUnConfig, ctx):
    net = FeaturesAndLogits(model, config.head_module)  # refuses a model without a final Linear, before any work
    with ctx.stage("unlearn"):
        optimizer = make_sgd(model, config, config.lr)
        total = config.epochs * len(retain_loader)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        generator, parallel = ctx.generator("augment"), ctx.parallel(net)

        def loss_fn(batch):
            x, y = batch[0].to(ctx.device), batch[1].to(ctx.device)
            views = [augment_batch(x, config.view_pad, config.view_flip, generator) for _ in range(2)]
            z, logits = parallel(torch.cat(views))
            z_a, z_b = z.chunk(2)
            return F.cross_entropy(logits, torch.cat([y, y])) + config.contrastive_weight * nt_xent(
                z_a, z_b, config.temperature)

        run_steps(model, optimizer, epoch_batches(retain_loader, config.epochs), loss_fn, total=total,
                  desc="coun", scheduler=scheduler, **ctx.loop(len(retain_loader)))
