"""Hyperparameters, as dataclasses with documented defaults.

Choices marked "our reading" are where the WSS-CL abstract is silent; docs/method.md ("Our
choices where the abstract is silent") lists them and the evidence behind each default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .saliency_storage import STORAGES_BY_MODE


@dataclass
class _Common:
    batch_size: int = 256  #: retain (and training) batch size
    momentum: float = 0.9  #: SGD momentum
    weight_decay: float = 5e-4  #: SGD weight decay
    aug_pad: int = 4  #: random-crop padding in pixels (CIFAR: 4); 0 disables the crop
    aug_flip: bool = True  #: random horizontal flips (off for digits)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """Build from a dict, refusing unknown keys with their names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**values)

    def replace(self, **changes):
        return replace(self, **changes)

    def _require(self, name: str, ok, expected: str) -> None:
        """Refuse field ``name`` unless ``ok(value)``, naming the field and what was expected."""
        value = getattr(self, name)
        try:
            valid = bool(ok(value))
        except TypeError:
            valid = False
        if not valid:
            raise ValueError(f"{type(self).__name__}.{name} must be {expected}, got {value!r}")

    def __post_init__(self):
        self._require("batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        self._require("momentum", lambda v: 0 <= v < 1, "in [0, 1)")
        self._require("weight_decay", lambda v: v >= 0, ">= 0")
        self._require("aug_pad", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")


@dataclass
class TrainConfig(_Common):
    """Training recipe of the original model, reused unchanged by Retrain.

    SGD (lr 0.1, momentum 0.9, weight decay 5e-4, the SalUn anchor) with a one-cycle
    schedule, which reaches the anchor's accuracy in far fewer than its 182 epochs.
    """

    epochs: int = 30
    lr: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        self._require("epochs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        self._require("lr", lambda v: v > 0, "> 0")


@dataclass
class BaselineConfig(_Common):
    """Hyperparameters of the baselines FT, GA, RL, SalUn and l1-sparse (SalUn code defaults)."""

    epochs: int = 10  #: unlearning epochs (SalUn: 10)
    lr: float = 0.01  #: learning rate of FT, RL, SalUn and l1-sparse (SalUn: 0.01 to 0.013)
    ga_lr: float = 1e-4  #: gradient ascent is unstable at FT's rate; SalUn uses 1e-5 to 1e-4
    ga_epochs: int = 5
    l1_alpha: float = 5e-4  #: initial weight of ||theta||_1, decayed linearly to 0
    saliency_ratio: float = 0.5  #: SalUn's gamma: the top half of |grad| is updated

    def __post_init__(self):
        super().__post_init__()
        for name in ("epochs", "ga_epochs"):  # 0 epochs would "unlearn" nothing and still write a record
            self._require(name, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        for name in ("lr", "ga_lr"):
            self._require(name, lambda v: v > 0, "> 0")
        self._require("l1_alpha", lambda v: v >= 0, ">= 0")
        self._require("saliency_ratio", lambda v: 0 < v <= 1, "in (0, 1]")


@dataclass
class NegGradPlusConfig(_Common):
    """NegGrad+ (Kurmanji et al., NeurIPS 2023): every step pairs a retain batch with a forget
    batch and minimises alpha * CE(retain) - (1 - alpha) * CE(forget), SGD at a constant rate."""

    epochs: int = 5  #: passes over the retain set (the forget set is cycled beside it)
    lr: float = 0.01
    alpha: float = 0.95  #: weight of the retain CE; 1 - alpha weighs the forget CE's ascent

    def __post_init__(self):
        super().__post_init__()
        self._require("epochs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        self._require("lr", lambda v: v > 0, "> 0")
        self._require("alpha", lambda v: 0 <= v <= 1, "in [0, 1]")


@dataclass
class SCRUBConfig(_Common):
    """SCRUB (Kurmanji et al., NeurIPS 2023): the original is a frozen teacher. Each of the first
    ``max_epochs`` epochs begins with a max-pass over the forget set (maximise
    KL(teacher || student)); every epoch then makes a min-pass over the retain set (minimise
    ``kl_weight`` * KL(teacher || student) + ``ce_weight`` * CE). KLs at ``temperature`` T,
    scaled by T^2 (distillation's convention)."""

    epochs: int = 5  #: min-passes over the retain set
    max_epochs: int = 2  #: max-passes over the forget set, at the start of the first epochs
    lr: float = 0.01
    kl_weight: float = 1.0  #: alpha
    ce_weight: float = 1.0  #: gamma
    temperature: float = 4.0

    def __post_init__(self):
        super().__post_init__()
        self._require("epochs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        self._require("max_epochs", lambda v: isinstance(v, int) and 0 <= v <= self.epochs,
                      f"an integer in [0, epochs={self.epochs}]")
        for name in ("lr", "temperature"):
            self._require(name, lambda v: v > 0, "> 0")
        for name in ("kl_weight", "ce_weight"):
            self._require(name, lambda v: v >= 0, ">= 0")


@dataclass
class CoUnConfig(_Common):
    """CoUn (Khalil et al., NeurIPS 2025): retain data only. Two views of each retain batch;
    loss = CE on both views + ``contrastive_weight`` * the symmetric SimCLR InfoNCE (NT-Xent)
    of their features (the input of the final Linear, as WSS-CL's z), whose negatives are the
    batch's other 2B - 2 views; SGD with a cosine decay to 0."""

    epochs: int = 10
    lr: float = 0.01
    contrastive_weight: float = 1.0  #: lambda
    temperature: float = 0.5
    view_pad: int = 4  #: random-crop padding of the two views
    view_flip: bool = True
    head_module: str | None = None  #: as WSSCLConfig.head_module

    def __post_init__(self):
        super().__post_init__()
        self._require("epochs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        for name in ("lr", "temperature"):
            self._require(name, lambda v: v > 0, "> 0")
        self._require("contrastive_weight", lambda v: v >= 0, ">= 0")
        self._require("view_pad", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")


@dataclass
class WSSCLConfig(_Common):
    """Every WSS-CL hyperparameter (docs/method.md), with our defaults.

    Stage 0 (saliency): g = |sum of forget-set CE gradients|, global top-``saliency_ratio``
    threshold t; ``saliency_mode="soft"`` gives s = clamp(g/t, 0, 1)
    (our reading of "soft-guided"), ``"hard"`` gives SalUn's mask 1[g >= t].

    Stage 1 (forgetting): q_i = mean over ``num_views`` augmented views of
    softmax(f_orig(aug x_i) / ``pseudo_label_temperature``) (our reading of "aggregated
    pseudo-labels"); minimise -mean_i min(KL(q_i || p_theta(x_i)), ``kl_bound``)
    + CE(retain), for ``forget_epochs`` passes over the forget set.
    ``kl_bound="auto"`` gives each forget sample the held-out cross-entropy of the same rank
    (rank-matched quantiles of the original model's losses on the holdout, a validation split),
    so that forget samples end up as far from their labels as unseen samples are
    (``methods/wsscl.py: kl_bounds``, which also gives the rule without a holdout).

    Stage 2 (contrastive fine-tuning): CE(retain) + ``contrastive_weight`` *
    InfoNCE(z(x_f), z(aug x_f), z(x_r); ``temperature``) on L2-normalised backbone features
    (anchor: the clean forget image; positive: its view; negatives: the retain batch), for
    ``finetune_epochs`` passes over the retain set, with ``finetune_forget_batch_size`` forget
    samples per step; with ``finetune_forget_weight`` > 0
    stage 1's bounded KL term, on the clean forget images and divided by each sample's bound
    (the fraction of the way to "unseen"), stays in the loss (our reading of "adversarial
    fine-tuning": forgetting pressure while utility recovers).

    Why a sharp q (``pseudo_label_temperature`` = 0.1): d KL(q || softmax(z)) / dz = p - q, so
    maximising the KL raises every logit whose probability already exceeds q's. With T = 1, q
    (averaged over augmented views) is softer than the model's confident prediction on the
    clean image it memorised, and the ascent makes it *more* confident in the true label; a
    sharp q is close to one-hot on the predicted class, so the ascent lowers it.

    Stage 1 uses saliency-weighted SGD (MaskedSGD) at a constant learning rate; stage 2 the same
    with a cosine decay to 0 (``finetune_schedule``), which lets the retain fit settle. The
    retain and forget batches get the training augmentation (``aug_*``, which should match the
    original model's recipe); the views of stages 1 and 2 get ``view_pad``/``view_flip``.
    """

    # the model and the views
    #: the final nn.Linear, by its name in model.named_modules(), whose input are the features z;
    #: None: the model's ``head``, else its last nn.Linear (``fc`` of a torchvision ResNet)
    head_module: str | None = None
    view_pad: int = 4  #: random-crop padding of the pseudo-label and contrastive views
    view_flip: bool = True  #: random flips in those views (off for digits)
    # stage 0: saliency
    saliency_ratio: float = 0.5
    saliency_mode: str = "soft"
    # stage 1: forgetting
    num_views: int = 4
    pseudo_label_temperature: float = 0.1  #: < 1 sharpens q; see the class docstring for why it must
    kl_bound: float | str = "auto"  #: a number, or "auto" (see kl_bounds in methods/wsscl.py)
    #: "auto" without a holdout: the bound of samples whose class the retain set still has
    #: (the held-out cross-entropy measured on our CIFAR-10 bench is 1.1; docs/method.md)
    kl_bound_fallback: float = 1.0
    forget_epochs: int = 3
    forget_lr: float = 0.01
    forget_batch_size: int = 128  #: forget samples per step (each step also takes one retain batch)
    # stage 2: contrastive fine-tuning
    finetune_epochs: int = 4
    finetune_lr: float = 0.01
    finetune_schedule: str = "cosine"  #: the learning rate: "cosine" (decays to 0 at the end) or "constant"
    #: forget samples per step, next to each retain batch; each gives its image (the anchor) and a view
    finetune_forget_batch_size: int = 32
    contrastive_weight: float = 1.0  #: lambda
    temperature: float = 0.5  #: of the InfoNCE loss
    finetune_forget_weight: float = 3.5  #: stage 1's bounded KL term kept in stage 2 (our reading of "adversarial")
    #: the model returned: "last" (the end of stage 2) or "holdout" (of the given model and every epoch's end,
    #: the one whose forget error is closest to unseen data's at the least holdout accuracy lost;
    #: methods/checkpoint_choice.py; without a holdout, "last")
    checkpoint_choice: str = "last"

    def __post_init__(self):
        super().__post_init__()
        self._require("finetune_schedule", lambda v: v in ("constant", "cosine"), "'constant' or 'cosine'")
        self._require("checkpoint_choice", lambda v: v in ("last", "holdout"), "'last' or 'holdout'")
        self._require("saliency_mode", lambda v: v in STORAGES_BY_MODE, "'soft' or 'hard'")
        self._require("saliency_ratio", lambda v: 0 < v <= 1, "in (0, 1]")
        for name in ("temperature", "pseudo_label_temperature", "kl_bound_fallback",
                     "forget_lr", "finetune_lr"):
            self._require(name, lambda v: v > 0, "> 0")
        for name in ("contrastive_weight", "finetune_forget_weight"):
            self._require(name, lambda v: v >= 0, ">= 0")
        for name in ("num_views", "forget_batch_size", "finetune_forget_batch_size"):
            self._require(name, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        for name in ("forget_epochs", "finetune_epochs", "view_pad"):
            self._require(name, lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")
        self._require("kl_bound", lambda v: v == "auto" or (isinstance(v, (int, float)) and v > 0),
                      "'auto' or a number > 0")
        if self.forget_epochs + self.finetune_epochs == 0:
            raise ValueError("WSSCLConfig: forget_epochs and finetune_epochs are both 0, so nothing would be "
                             "unlearned; give at least one stage an epoch")
