"""SCRUB: a student (the model) moves away from the frozen original (the teacher) on the forget
set and stays close to it, and to the labels, on the retain set."""
import copy
from itertools import chain

import torch
import torch.nn.functional as F

from ..config import SCRUBConfig
from ..training import run_steps
from .common import augmented, make_sgd
from .registry import register


def distillation_kl(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """KL(softmax(t / T) || softmax(s / T)) * T^2, averaged over the batch."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature ** 2


def step_loss(kind: str, logits, teacher_logits, labels, config: SCRUBConfig) -> torch.Tensor:
    """A max-step ("max", forget batch): -KL, to move away from the teacher; a min-step ("min",
    retain batch): kl_weight * KL + ce_weight * CE."""
    kl = distillation_kl(logits, teacher_logits, config.temperature)
    if kind == "max":
        return -kl
    return config.kl_weight * kl + config.ce_weight * F.cross_entropy(logits, labels)


@register("scrub", SCRUBConfig, "max/min distillation from the original (Kurmanji et al. 2023)")
def run(model, forget_loader, retain_loader, config: SCRUBConfig, ctx):
    with ctx.stage("unlearn"):
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        optimizer = make_sgd(model, config, config.lr)
        generator, net = ctx.generator("augment"), ctx.parallel(model)

        def epoch(e):
            """The tagged batches of epoch ``e``: a max-pass over the forget set (first epochs), a min-pass."""
            if e < config.max_epochs:
                yield from (("max", batch) for batch in forget_loader)
            yield from (("min", batch) for batch in retain_loader)

        def loss_fn(tagged):
            kind, batch = tagged
            x, y = augmented(batch, config, ctx, generator)
            with torch.no_grad():
                teacher_logits = teacher(x)
            return step_loss(kind, net(x), teacher_logits, y, config)

        total = config.max_epochs * len(forget_loader) + config.epochs * len(retain_loader)
        run_steps(model, optimizer, chain.from_iterable(epoch(e) for e in range(config.epochs)), loss_fn,
                  total=total, desc="scrub", **ctx.loop(len(retain_loader)))
