"""Models with a ``features(x)`` backbone and a linear ``head``: f = head o features; and
:func:`find_head`, which finds the final Linear of any other classifier (a torchvision
ResNet's ``fc``, a VGG's ``classifier.6``, ...)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class ResNet18CIFAR(nn.Module):
    """torchvision ResNet-18 with the CIFAR stem: 3x3 stride-1 first conv, no max-pool.

    features(x): (B, 3, H, W) -> (B, 512) penultimate features; head: Linear(512, classes).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.backbone = net
        self.head = nn.Linear(512, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallCNN(nn.Module):
    """Conv-BN-ReLU stages with pooling, then global average pooling.

    features(x): (B, C, H, W) -> (B, 4 * width); head: Linear(4 * width, classes).
    Small enough to train on a CPU in seconds (digits) to minutes (CIFAR-10 subsets).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()

        def block(cin, cout, pool):
            layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        self.backbone = nn.Sequential(
            *block(in_channels, width, False), *block(width, 2 * width, True),
            *block(2 * width, 4 * width, True), *block(4 * width, 4 * width, False),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES = {"resnet18": ResNet18CIFAR, "small_cnn": SmallCNN}


TORCHVISION_PREFIX = "torchvision:"


def build_model(arch: str, num_classes: int, in_channels: int, **kwargs) -> nn.Module:
    """One of ``ARCHITECTURES``, or ``torchvision:NAME``: any torchvision classifier by name
    (``torchvision.models.get_model``, no pretrained weights), for 3-channel images."""
    if arch.startswith(TORCHVISION_PREFIX):
        from torchvision.models import get_model, list_models

        name = arch[len(TORCHVISION_PREFIX):]
        if name not in list_models():
            raise ValueError(f"unknown torchvision architecture {name!r} (torchvision.models.list_models())")
        if in_channels != 3:
            raise ValueError(f"{arch} takes 3-channel images; this dataset has {in_channels} channel(s)")
        return get_model(name, weights=None, num_classes=num_classes)
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)} or torchvision:NAME")
    return ARCHITECTURES[arch](num_classes=num_classes, in_channels=in_channels, **kwargs)


def fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised (seeded): Retrain's start."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in clone.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    return clone


def num_outputs(model: nn.Module, example: torch.Tensor) -> int:
    """Number of classes, from one eval-mode forward of a single example."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(example[:1])
    model.train(was_training)
    return out.shape[1]


def find_head(model: nn.Module, name: str | None = None) -> tuple[str, nn.Linear]:
    """(name, module) of the classifier's final ``nn.Linear``, whose input are the features:
    ``name`` from ``model.named_modules()`` when given, else the ``head`` of this library's
    models, else the last ``nn.Linear`` the model registers (``fc`` in a torchvision ResNet)."""
    modules = dict(model.named_modules())
    linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
    if name is not None:
        if not isinstance(modules.get(name), nn.Linear):
            raise ValueError(f"head_module {name!r} is not an nn.Linear of the model; its Linear layers: {linears}")
        return name, modules[name]
    if isinstance(getattr(model, "head", None), nn.Linear):
        return "head", model.head
    if not linears:
        raise TypeError(f"{type(model).__name__} has no nn.Linear layer to take features from; give it a final "
                        "Linear, or name the layer whose input are the features with WSSCLConfig(head_module=...)")
    return linears[-1], modules[linears[-1]]


class FeaturesAndLogits(nn.Module):
    """(features z (B, D), logits (B, classes)) in one forward of ``model``: z is the input of
    its final Linear (:func:`find_head`), caught by a forward pre-hook, so any classifier
    works. The first call checks that the logits are that Linear's output (the Linear is the
    model's last op); otherwise the head must be named."""

    def __init__(self, model: nn.Module, head_module: str | None = None):
        super().__init__()
        self.model = model
        self.head_name, self.head = find_head(model, head_module)
        self.checked = False

    def forward(self, x: torch.Tensor):
        caught = []
        handle = self.head.register_forward_pre_hook(lambda module, args: caught.append(args[0]))
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if len(caught) != 1:
            raise RuntimeError(f"the head {self.head_name!r} ran {len(caught)} times in one forward; name the final "
                               "Linear with WSSCLConfig(head_module=...)")
        z = caught[0].flatten(1)
        if not self.checked:
            with torch.no_grad():
                if logits.shape != (x.shape[0], self.head.out_features) or not torch.allclose(
                        self.head(z).float(), logits.float(), rtol=1e-3, atol=1e-3):
                    raise TypeError(f"the model's output is not the output of {self.head_name!r}; name its final "
                                    "Linear layer with WSSCLConfig(head_module=...)")
            self.checked = True
        return z, logits
