"""Two CIFAR-shaped (3x32x32) classifiers of the coloured digits, cheap enough for 1e7-draw truths.

Both start with a patchify stem (a 4x4 convolution at stride 4, as in ConvNeXt and ViT), so the
input noise reaches the rest of the network only through one linear map per patch; `truths`
draws that map's Gaussian image directly, which makes Monte Carlo truths affordable on a CPU.
The estimators under test see only the full model and the 3,072-dimensional input.
`patch_cnn`: ReLU CNN with a strided 3x3 convolution and an MLP head. `patch_mixer`: batch norm,
GELU, a depthwise residual block and average pooling. `python -m
benchmarks.noise_real_scale.train` writes the weights next to this file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent


class PatchModel(nn.Module):
    """A patchify stem (`stem`, a Conv2d with kernel = stride) followed by `body`."""

    def __init__(self, stem: nn.Conv2d, body: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x))


class DepthwiseResidual(nn.Module):
    """x + pointwise(GELU(depthwise 3x3(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pointwise(nn.functional.gelu(self.depthwise(x)))


def patch_cnn() -> PatchModel:
    """4x4/4 stem (8) -> ReLU -> 3x3/2 conv (16) -> ReLU -> 256-32-10 MLP head."""
    body = nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    return PatchModel(nn.Conv2d(3, 8, 4, stride=4), body)


def patch_mixer() -> PatchModel:
    """4x4/4 stem (12) -> BN -> GELU -> depthwise residual -> 2x2 average pool -> 192-48-10."""
    body = nn.Sequential(
        nn.BatchNorm2d(12),
        nn.GELU(),
        DepthwiseResidual(12),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 48),
        nn.GELU(),
        nn.Linear(48, 10),
    )
    return PatchModel(nn.Conv2d(3, 12, 4, stride=4), body)


ARCHITECTURES: dict[str, Callable[[], PatchModel]] = {
    "patch_cnn": patch_cnn,
    "patch_mixer": patch_mixer,
}
SEEDS = {"patch_cnn": 71, "patch_mixer": 89}


def weights_path(name: str) -> Path:
    """Where the trained weights of architecture `name` are stored."""
    return WEIGHTS_DIR / f"{name}.pt"


def load(name: str) -> PatchModel:
    """The trained model `name` in eval mode (weights loaded with weights_only=True)."""
    model = ARCHITECTURES[name]()
    model.load_state_dict(torch.load(weights_path(name), weights_only=True))
    return model.eval()
