"""Four digits classifiers the noise estimators were not developed on, and their loaders.

Architectures, widths and seeds differ from the demo CNN (16/32 channels, no batch norm):
`bn_cnn` has batch norm and dropout, `plain_cnn` is narrower with average pooling, `mlp` has
no convolutions, `deep_mlp` has four ReLU layers and layer norm.
`python -m benchmarks.noise_heldout.train` writes the weights next to this file; `load(name)`
returns a trained model in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent


def bn_cnn() -> nn.Module:
    """3x3 conv (8) -> BN -> ReLU -> 3x3 conv (16) -> BN -> ReLU -> max-pool -> dropout head."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(16 * 4 * 4, 48),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(48, 10),
    )


def plain_cnn() -> nn.Module:
    """5x5 conv (8) -> tanh -> average pool -> 3x3 conv (16) -> ReLU -> linear; no BN."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


def mlp() -> nn.Module:
    """64 -> 96 -> 96 -> 10 with GELU."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 96),
        nn.GELU(),
        nn.Linear(96, 96),
        nn.GELU(),
        nn.Linear(96, 10),
    )


def deep_mlp() -> nn.Module:
    """64 -> 128 -> 64 -> 32 -> 10 with ReLU and layer norm; added last, never developed on."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 128),
        nn.ReLU(),
        nn.LayerNorm(128),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "bn_cnn": bn_cnn,
    "plain_cnn": plain_cnn,
    "mlp": mlp,
    "deep_mlp": deep_mlp,
}
SEEDS = {"bn_cnn": 11, "plain_cnn": 23, "mlp": 37, "deep_mlp": 53}


def weights_path(name: str) -> Path:
    """Where the trained weights of architecture `name` are stored."""
    return WEIGHTS_DIR / f"{name}.pt"


def load(name: str) -> nn.Module:
    """The trained model `name` in eval mode (weights loaded with weights_only=True)."""
    model = ARCHITECTURES[name]()
    model.load_state_dict(torch.load(weights_path(name), weights_only=True))
    return model.eval()
