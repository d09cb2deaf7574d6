"""Train the real-scale noise models: `python -m benchmarks.noise_real_scale.train [NAME ...]`."""

from __future__ import annotations

import sys

import torch
from torch import nn

from benchmarks.noise_real_scale.models import ARCHITECTURES, SEEDS, weights_path
from robustness_checks.demo.colour_digits import colour_test_set, colour_train_set
from robustness_checks.demo.train import accuracy, fit

EPOCHS = 60
TRAINING_NOISE = 0.3


def noisy(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of a random scale up to TRAINING_NOISE, so some inputs stay near the edge."""
    scale = TRAINING_NOISE * torch.rand((x.shape[0], 1, 1, 1), generator=generator)
    return x + scale * torch.randn(x.shape, generator=generator)


def train(name: str) -> nn.Module:
    """Adam from the model's own seed, noise augmentation; eval mode."""
    torch.manual_seed(SEEDS[name])
    x, y = colour_train_set()
    model = ARCHITECTURES[name]()
    return fit(model, x, y, epochs=EPOCHS, seed=SEEDS[name], augment=noisy)


def main() -> None:
    x_test, y_test = colour_test_set()
    for name in sys.argv[1:] or list(ARCHITECTURES):
        model = train(name)
        torch.save(model.state_dict(), weights_path(name))
        size = weights_path(name).stat().st_size
        print(f"{name}: test accuracy {accuracy(model, x_test, y_test):.3f}, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
