"""Train the held-out models: `python -m benchmarks.noise_heldout.train [NAME ...]` (a minute)."""

from __future__ import annotations

import sys

import torch
from torch import nn

from benchmarks.noise_heldout.models import ARCHITECTURES, SEEDS, weights_path
from robustness_checks.demo.digits import test_set, train_set

EPOCHS = {"bn_cnn": 30, "plain_cnn": 40, "mlp": 60, "deep_mlp": 40}


def train(name: str) -> nn.Module:
    """Adam with weight decay and light input noise, deterministic from the model's seed."""
    torch.manual_seed(SEEDS[name])
    model = ARCHITECTURES[name]()
    x, y = train_set()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    generator = torch.Generator().manual_seed(SEEDS[name])
    for _ in range(EPOCHS[name]):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 32):
            batch = order[start : start + 32]
            noisy = x[batch] + 0.05 * torch.randn(x[batch].shape, generator=generator)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(noisy), y[batch]).backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    images, labels = test_set()
    names = sys.argv[1:] or list(ARCHITECTURES)
    for name in names:
        model = train(name)
        torch.save(model.state_dict(), weights_path(name))
        with torch.no_grad():
            accuracy = (model(images).argmax(1) == labels).float().mean().item()
        size = weights_path(name).stat().st_size
        print(f"{name}: test accuracy {accuracy:.3f}, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
