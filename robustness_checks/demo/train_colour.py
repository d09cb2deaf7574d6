"""Train the CIFAR-shaped colour-digit models: `python -m robustness_checks.demo.train_colour`.

Adam, seed 0, a random shift of up to 2 pixels as augmentation; it prints test accuracy and
writes `colour_digits_{resnet,vgg}.pt` next to the other demo weights.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from robustness_checks.demo.colour_digits import (
    ARCHITECTURES,
    colour_test_set,
    colour_train_set,
    weights_path,
)
from robustness_checks.demo.train import accuracy, fit

LEARNING_RATE = 2e-3


def shifted(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to 2 pixels in each direction (reflection padding)."""
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    rows, cols = torch.randint(0, 5, (2,), generator=generator).tolist()
    return padded[:, :, rows : rows + x.shape[2], cols : cols + x.shape[3]]


def train(name: str, epochs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    x, y = colour_train_set()
    model = ARCHITECTURES[name]()
    return fit(model, x, y, epochs=epochs, seed=seed, learning_rate=LEARNING_RATE, augment=shifted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    x_test, y_test = colour_test_set()
    for name in args.models:
        start = time.perf_counter()
        model = train(name, args.epochs)
        torch.save(model.state_dict(), weights_path(name))
        parameters = sum(p.numel() for p in model.parameters())
        print(
            f"{name}: {parameters:,} parameters, test accuracy "
            f"{accuracy(model, x_test, y_test):.4f}, {time.perf_counter() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
