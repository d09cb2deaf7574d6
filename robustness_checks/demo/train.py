"""Train the bundled DigitsCNN weights: `python -m robustness_checks.demo.train`.

By default it trains the five 10-class ensemble members `digits_cnn_seed{0..4}.pt`. With
`--known-classes 0 1 2 3 4 5` it trains instead only the near-OOD model
`digits_cnn_classes0-5.pt` (seed 0 unless `--seeds` names one other seed) on the training
examples of those classes, and leaves the seed files alone.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from robustness_checks.demo.digits import NUM_CLASSES, test_set, train_set
from robustness_checks.demo.model import WEIGHTS_DIR, DigitsCNN, known_classes_weights_path

BATCH_SIZE = 64
LEARNING_RATE = 1e-3
DEFAULT_SEEDS = [0, 1, 2, 3, 4]
KNOWN_CLASSES_SEED = 0
M = TypeVar("M", bound=nn.Module)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of examples whose argmax prediction equals the label."""
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


def train_one(seed: int, epochs: int, known_classes: Sequence[int] | None = None) -> DigitsCNN:
    """Train a fresh DigitsCNN deterministically from `seed` with Adam.

    With `known_classes` (which must be 0 to k-1), a k-class model trained only on the
    training examples of those classes; labels are unchanged, so output i is digit i.
    """
    torch.manual_seed(seed)
    if known_classes is None:
        x, y = train_set()
        model = DigitsCNN()
    else:
        x, y = train_set(classes=known_classes)
        model = DigitsCNN(num_classes=len(known_classes))
    return fit(model, x, y, epochs=epochs, seed=seed)


def fit(
    model: M,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    seed: int,
    learning_rate: float = LEARNING_RATE,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> M:
    """Adam on the cross-entropy, shuffled batches of BATCH_SIZE from a generator seeded with
    `seed` (which `augment`, given, also draws from); the model comes back in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            inputs = x[batch] if augment is None else augment(x[batch], generator)
            optimizer.zero_grad()
            loss_fn(model(inputs), y[batch]).backward()
            optimizer.step()
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument(
        "--known-classes",
        type=int,
        nargs="+",
        default=None,
        metavar="CLASS",
        help="train only the model for these classes, which must be 0 to k-1 (e.g. 0 1 2 3 4 5)",
    )
    args = parser.parse_args(argv)

    known = args.known_classes
    if known is not None:
        if sorted(set(known)) != list(range(len(known))) or not 2 <= len(known) < NUM_CLASSES:
            parser.error(
                f"--known-classes must be 0 to k-1 for some k from 2 to {NUM_CLASSES - 1}, "
                f"got {known}"
            )
        known = sorted(known)
        seeds = args.seeds or [KNOWN_CLASSES_SEED]
        if len(seeds) != 1:
            parser.error("--known-classes trains one model: give at most one seed")
    else:
        seeds = args.seeds or DEFAULT_SEEDS

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    x_test, y_test = test_set(classes=known)
    for seed in seeds:
        start = time.perf_counter()
        model = train_one(seed, args.epochs, known)
        elapsed = time.perf_counter() - start
        acc = accuracy(model, x_test, y_test)
        if known is None:
            path = args.out / f"digits_cnn_seed{seed}.pt"
        else:
            path = args.out / known_classes_weights_path(len(known)).name
        torch.save(model.state_dict(), path)
        print(f"seed {seed}: {elapsed:.1f}s, test accuracy {acc:.4f}, saved {path}")


if __name__ == "__main__":
    main()
