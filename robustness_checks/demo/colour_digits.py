"""CIFAR-shaped data and models: the digits at 3x32x32 in random colours, two small CNNs.

The 8x8 digits are upsampled (bilinear) to 32x32 and painted: each image gets a foreground and
a background colour drawn from a generator seeded by its index, so the set is deterministic and
the colours carry no label information. `colour_resnet()` (a ResNet-style CNN with a 3x3 stem,
two residual stages) and `colour_vgg()` (plain 3x3 convolutions) are trained on it by
`python -m robustness_checks.demo.train_colour`; their weights ship under 1 MB each. They are the
real-scale validation tier's models: inputs of CIFAR's shape, small enough that Monte Carlo
truths of 1e7 draws are affordable on a CPU.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from robustness_checks.demo import digits
from robustness_checks.demo.model import WEIGHTS_DIR

SIDE = 32
COLOUR_SEED = 20261207


def _painted(x: torch.Tensor, offset: int) -> torch.Tensor:
    """(N, 1, 8, 8) digits in [0, 1] as (N, 3, 32, 32) colour images in [0, 1]."""
    big = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False).clamp(0, 1)
    generator = torch.Generator().manual_seed(COLOUR_SEED + offset)
    foreground = torch.rand(x.shape[0], 3, 1, 1, generator=generator)
    background = torch.rand(x.shape[0], 3, 1, 1, generator=generator) * 0.5
    # Keep the digit visible: the foreground is pushed away from the background.
    foreground = torch.where(foreground > background + 0.25, foreground, 1.0 - 0.5 * foreground)
    return background + (foreground - background) * big


@lru_cache(maxsize=1)
def _sets() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x_train, y_train = digits.train_set()
    x_test, y_test = digits.test_set()
    return _painted(x_train, 0), y_train, _painted(x_test, 100_000), y_test


def colour_train_set() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,257 training digits as (N, 3, 32, 32) float32 colour images, int64 labels."""
    x, y, _, _ = _sets()
    return x.clone(), y.clone()


def colour_test_set(limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 540 test digits as (N, 3, 32, 32) float32 colour images (the first `limit`)."""
    _, _, x, y = _sets()
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x.clone(), y.clone()


colour_test_set.__test__ = False  # type: ignore[attr-defined]


class Residual(nn.Module):
    """Two 3x3 convolutions with a skip connection (a 1x1 projection when the shape changes)."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1)
        self.second = nn.Conv2d(outputs, outputs, 3, padding=1)
        self.skip = (
            nn.Identity()
            if inputs == outputs and stride == 1
            else nn.Conv2d(inputs, outputs, 1, stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.skip(x) + self.second(F.relu(self.first(x))))


class ColourResNet(nn.Module):
    """A 3x3 stem (16 channels), residual stages of 16 and 32 channels (the second at stride 2),
    global average pooling and a linear head: about 30,000 parameters."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.stages = nn.Sequential(Residual(16, 16, 2), Residual(16, 32, 2))
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(F.relu(self.stem(x)))
        return self.head(features.mean(dim=(2, 3)))


class ColourVGG(nn.Module):
    """Three 3x3 convolutions (16, 32, 32 channels) each followed by 2x2 max-pooling, then a
    linear head: about 20,000 parameters."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for inputs, outputs in ((3, 16), (16, 32), (32, 32)):
            layers += [nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(32 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


ARCHITECTURES: dict[str, type[nn.Module]] = {"resnet": ColourResNet, "vgg": ColourVGG}


def weights_path(name: str) -> str:
    return str(WEIGHTS_DIR / f"colour_digits_{name}.pt")


def _load(name: str) -> nn.Module:
    model = ARCHITECTURES[name]()
    model.load_state_dict(torch.load(weights_path(name), weights_only=True))
    return model.eval()


def colour_resnet() -> nn.Module:
    """The trained ColourResNet in eval mode."""
    return _load("resnet")


def colour_vgg() -> nn.Module:
    """The trained ColourVGG in eval mode."""
    return _load("vgg")
