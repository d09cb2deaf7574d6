"""Tests for the bundled offline demo: digits data, DigitsCNN and its trained weights."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import roc_auc_score

from robustness_checks.demo import digits
from robustness_checks.demo.model import (
    DigitsCNN,
    digits_cnn,
    digits_cnn_known_classes,
    known_classes_weights_path,
    weights_path,
)

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


# Near-OOD setting: a 6-class model trained only on digits 0-5; digits 6-9 are held out.

KNOWN = list(range(6))
HELD_OUT = [6, 7, 8, 9]


def test_known_classes_constants() -> None:
    assert list(digits.KNOWN_CLASSES) == KNOWN
    assert list(digits.HELD_OUT_CLASSES) == HELD_OUT


def test_known_classes_weights_file_is_small_and_loads_with_weights_only() -> None:
    path = known_classes_weights_path()
    assert path.name == "digits_cnn_classes0-5.pt"
    assert path.is_file()
    assert path.stat().st_size < 1_000_000
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["classifier.5.weight"].shape == (6, 64)
    DigitsCNN(num_classes=6).load_state_dict(state)
    with pytest.raises(RuntimeError):
        DigitsCNN().load_state_dict(state)


def test_known_classes_factory_without_pretrained_weights() -> None:
    model = digits_cnn_known_classes(pretrained=False)
    assert isinstance(model, DigitsCNN)
    assert not model.training
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 6)


def test_known_classes_model_accuracy_on_known_classes() -> None:
    model = digits_cnn_known_classes()
    assert not model.training
    x, y = digits.test_set(classes=range(6))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (len(x), 6)
    accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    assert accuracy >= 0.95


def test_known_classes_model_differs_from_seed_models() -> None:
    known = digits_cnn_known_classes().state_dict()
    member = digits_cnn(pretrained=True, seed=0).state_dict()
    assert not torch.equal(known["features.0.weight"], member["features.0.weight"])


def test_test_set_held_out_classes_contain_only_those_labels() -> None:
    x, y = digits.test_set(classes=HELD_OUT)
    full_x, full_y = digits.test_set()
    keep = full_y >= 6
    assert set(y.tolist()) == set(HELD_OUT)
    assert torch.equal(y, full_y[keep])
    assert torch.equal(x, full_x[keep])
    assert x.shape == (int(keep.sum()), 1, 8, 8)
    assert x.dtype == torch.float32 and y.dtype == torch.int64


def test_test_set_classes_partition_the_test_set() -> None:
    _, known_y = digits.test_set(classes=KNOWN)
    _, held_out_y = digits.test_set(classes=HELD_OUT)
    _, full_y = digits.test_set()
    assert set(known_y.tolist()) == set(KNOWN)
    assert len(known_y) + len(held_out_y) == len(full_y) == 540


def test_test_set_limit_applies_after_class_filtering() -> None:
    x, y = digits.test_set(limit=7, classes=[9])
    all_x, all_y = digits.test_set(classes=[9])
    assert y.tolist() == [9] * 7
    assert torch.equal(x, all_x[:7])
    assert len(all_y) > 7


def test_train_set_classes() -> None:
    x, y = digits.train_set(classes=range(6))
    full_x, full_y = digits.train_set()
    keep = full_y < 6
    assert set(y.tolist()) == set(KNOWN)
    assert torch.equal(x, full_x[keep])
    assert torch.equal(y, full_y[keep])
    _, held_out_y = digits.train_set(classes=HELD_OUT)
    assert len(y) + len(held_out_y) == len(full_y)


def test_class_filtered_sets_are_copies() -> None:
    x, y = digits.test_set(classes=HELD_OUT)
    x.fill_(-1.0)
    y.fill_(-1)
    x2, y2 = digits.test_set(classes=HELD_OUT)
    assert x2.min().item() >= 0.0
    assert set(y2.tolist()) == set(HELD_OUT)


@pytest.mark.parametrize(
    ("classes", "error", "match"),
    [
        ([], ValueError, "at least one"),
        ([6, 10], ValueError, r"\[10\] are not digit classes"),
        ([-1], ValueError, "not digit classes"),
        (6, TypeError, "sequence of ints"),
        ("67", TypeError, "sequence of ints"),
        ([6.5], TypeError, "sequence of ints"),
    ],
)
def test_invalid_classes_are_rejected(classes: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        digits.test_set(classes=classes)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        digits.train_set(classes=classes)  # type: ignore[arg-type]


def test_known_classes_model_is_less_confident_on_held_out_classes() -> None:
    """The premise of a near-OOD check: max softmax probability drops on digits 6-9."""
    model = digits_cnn_known_classes()
    known_x, _ = digits.test_set(classes=KNOWN)
    held_out_x, _ = digits.test_set(classes=HELD_OUT)
    with torch.no_grad():
        known_msp = model(known_x).softmax(dim=1).amax(dim=1)
        held_out_msp = model(held_out_x).softmax(dim=1).amax(dim=1)
    # Bundled weights: about 0.986 on known classes and 0.774 on held-out classes.
    assert held_out_msp.mean().item() < known_msp.mean().item() - 0.1
    scores = torch.cat([1 - known_msp, 1 - held_out_msp]).numpy()
    is_ood = [0] * len(known_msp) + [1] * len(held_out_msp)
    # Bundled weights: AUROC about 0.964.
    assert roc_auc_score(is_ood, scores) >= 0.9
