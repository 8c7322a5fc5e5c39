"""Retrain: the exact-unlearning gold standard, the original recipe from scratch on D_r."""
from ..config import TrainConfig
from ..models import fresh_copy
from ..seeding import stream_seed
from ..training import train_model
from .registry import register


@register("retrain", TrainConfig, "train from scratch on the retain set (gold standard)")
def run(model, forget_loader, retain_loader, config: TrainConfig, ctx):
    with ctx.stage("retrain"):
        scratch = fresh_copy(model, seed=stream_seed(ctx.seed, "retrain_init"))
        train_model(scratch, retain_loader.dataset, config, ctx.device, seed=stream_seed(ctx.seed, "retrain"),
                    progress=ctx.progress, desc="retrain", run_state=ctx.run_state, execution=ctx.execution)
        model.load_state_dict(scratch.state_dict())
