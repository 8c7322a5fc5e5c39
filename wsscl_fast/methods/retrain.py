"""Retrain: the exact-unlearning gold standard, the original recipe from scratch on D_r."""
from ..config import TrainConfig
from ..models import fresh_copy
from ..training import train_model
from .registry import register


@register("retrain", TrainConfig, "train from scratch on the retain set (gold standard)")
def run(model, forget_loader, retain_loader, config: TrainConfig, ctx):
    with ctx.stage("retrain"):
        scratch = fresh_copy(model, seed=ctx.seed + 7919)
        train_model(scratch, retain_loader.dataset, config, ctx.device, seed=ctx.seed, progress=ctx.progress,
                    desc="retrain", run_state=ctx.run_state, execution=ctx.execution)
        model.load_state_dict(scratch.state_dict())
