"""Train the bundled DigitsCNN weights: `python -m robustness_checks.demo.train`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from robustness_checks.demo.digits import test_set, train_set
from robustness_checks.demo.model import WEIGHTS_DIR, DigitsCNN

BATCH_SIZE = 64
LEARNING_RATE = 1e-3


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of examples whose argmax prediction equals the label."""
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


def train_one(seed: int, epochs: int) -> DigitsCNN:
    """Train a fresh DigitsCNN deterministically from `seed` with Adam."""
    torch.manual_seed(seed)
    x, y = train_set()
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    x_test, y_test = test_set()
    for seed in args.seeds:
        start = time.perf_counter()
        model = train_one(seed, args.epochs)
        elapsed = time.perf_counter() - start
        acc = accuracy(model, x_test, y_test)
        path = args.out / f"digits_cnn_seed{seed}.pt"
        torch.save(model.state_dict(), path)
        print(f"seed {seed}: {elapsed:.1f}s, test accuracy {acc:.4f}, saved {path}")


if __name__ == "__main__":
    main()
