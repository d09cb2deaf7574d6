"""The CIFAR-shaped colour-digit data and models: shapes, determinism, bundled weights."""

from __future__ import annotations

import os

import torch

from robustness_checks.demo.colour_digits import (
    colour_resnet,
    colour_test_set,
    colour_vgg,
    weights_path,
)


def test_the_data_is_cifar_shaped_deterministic_and_in_range() -> None:
    x, y = colour_test_set()
    assert x.shape == (540, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (540,)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    again, _ = colour_test_set(10)
    assert torch.equal(again, x[:10])


def test_the_bundled_models_are_accurate_and_small() -> None:
    x, y = colour_test_set()
    for name, model in (("resnet", colour_resnet()), ("vgg", colour_vgg())):
        with torch.no_grad():
            accuracy = float((model(x).argmax(1) == y).float().mean())
        assert accuracy >= 0.95, (name, accuracy)
        assert os.path.getsize(weights_path(name)) < 1_000_000
