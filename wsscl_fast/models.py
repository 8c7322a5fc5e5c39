"""Models with a ``features(x)`` backbone and a linear ``head``: f = head o features."""
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


def build_model(arch: str, num_classes: int, in_channels: int, **kwargs) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
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
