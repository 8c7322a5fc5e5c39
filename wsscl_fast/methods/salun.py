"""SalUn: RL restricted to the top-gamma salient weights; the rest are frozen exactly."""
from ..config import BaselineConfig
from ..saliency import compute_saliency
from ..saliency_storage import storage_for
from .registry import register
from .rl import random_label_unlearning


@register("salun", BaselineConfig, "RL with SalUn's hard saliency mask (gamma = 0.5)",
          reads=("epochs", "lr", "saliency_ratio"))
def run(model, forget_loader, retain_loader, config: BaselineConfig, ctx):
    with ctx.stage("saliency"):
        mask = compute_saliency(model, forget_loader, ratio=config.saliency_ratio, mode="hard",
                                device=ctx.device, backend=ctx.backend, saliency_storage=storage_for("hard"))
    with ctx.stage("unlearn"):
        random_label_unlearning(model, forget_loader, retain_loader, config, ctx, saliency=mask, desc="salun",
                                saliency_storage=storage_for("hard"))
