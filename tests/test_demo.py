"""Tests for the bundled offline demo: digits data, DigitsCNN and its trained weights."""

from __future__ import annotations

import pytest
import torch

from robustness_checks.demo import digits
from robustness_checks.demo.model import DigitsCNN, digits_cnn, weights_path

SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_weights_file_is_small_and_loads_with_weights_only(seed: int) -> None:
    path = weights_path(seed)
    assert path.is_file()
    assert path.stat().st_size < 1_000_000
    state = torch.load(path, map_location="cpu", weights_only=True)
    DigitsCNN().load_state_dict(state)


@pytest.mark.parametrize("seed", SEEDS)
def test_pretrained_member_accuracy(seed: int) -> None:
    model = digits_cnn(pretrained=True, seed=seed)
    assert not model.training
    x, y = digits.test_set()
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy >= 0.95


def test_ensemble_members_differ() -> None:
    first = digits_cnn(pretrained=True, seed=0).state_dict()
    second = digits_cnn(pretrained=True, seed=1).state_dict()
    assert not torch.equal(first["classifier.2.weight"], second["classifier.2.weight"])


def test_missing_weights_error_names_available_seeds() -> None:
    with pytest.raises(FileNotFoundError, match=r"available seeds: \[0, 1, 2, 3, 4\]"):
        digits_cnn(pretrained=True, seed=999)


def test_test_set_shapes_dtypes_and_range() -> None:
    x, y = digits.test_set()
    assert x.shape == (540, 1, 8, 8)
    assert x.dtype == torch.float32
    assert y.shape == (540,)
    assert y.dtype == torch.int64
    assert x.min().item() >= 0.0
    assert x.max().item() == 1.0
    assert set(y.tolist()) == set(range(10))


def test_train_set_is_the_rest_of_the_data() -> None:
    x, y = digits.train_set()
    assert x.shape == (1797 - 540, 1, 8, 8)
    assert y.shape == (1797 - 540,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64


def test_test_set_limit() -> None:
    x, y = digits.test_set(limit=10)
    full_x, full_y = digits.test_set()
    assert torch.equal(x, full_x[:10])
    assert torch.equal(y, full_y[:10])


def test_split_is_deterministic_and_cache_cannot_be_corrupted() -> None:
    x1, y1 = digits.test_set()
    x1.fill_(-1.0)
    y1.fill_(-1)
    x2, y2 = digits.test_set()
    x3, y3 = digits.test_set()
    assert torch.equal(x2, x3)
    assert torch.equal(y2, y3)
    assert x2.min().item() >= 0.0
    assert y2.min().item() >= 0


def test_noise_images_are_deterministic_and_in_unit_range() -> None:
    x1, y1 = digits.noise_images(count=50, seed=3)
    x2, y2 = digits.noise_images(count=50, seed=3)
    other, _ = digits.noise_images(count=50, seed=4)
    assert x1.shape == (50, 1, 8, 8)
    assert x1.dtype == torch.float32
    assert torch.equal(x1, x2)
    assert torch.equal(y1, y2)
    assert not torch.equal(x1, other)
    assert x1.min().item() >= 0.0
    assert x1.max().item() <= 1.0
    assert y1.dtype == torch.int64
    assert torch.equal(y1, torch.zeros(50, dtype=torch.int64))
