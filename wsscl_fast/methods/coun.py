"""CoUn: fine-tune on the retain set with CE plus a SimCLR contrastive term between two views of
each retain batch. The forget set is never used: its samples drift with the retain
representations toward the retain clusters most similar to them."""
import torch
import torch.nn.functional as F

from ..config import CoUnConfig
from ..data import augment_batch
from ..models import FeaturesAndLogits
from ..training import epoch_batches, run_steps
from .common import make_sgd
from .registry import register


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric SimCLR InfoNCE of two views (B, D) each: for each of the 2B views, the positive
    is its other view and the negatives are the other 2B - 2 views; cosine similarities / T,
    averaged over the 2B anchors."""
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # a view is not its own negative
    b = z_a.shape[0]
    positives = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, positives)


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
