"""APGD-CE against PGD on the standard and the adversarially trained demo CNNs (known answers)."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import Tensor, nn

from robustness_checks.attacks import run_attack
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import (
    adversarial_weights_path,
    digits_cnn,
    digits_cnn_adversarial,
)

EPS = (0.1, 0.2)
EXAMPLES = 200
MODELS = ("standard", "adversarial")


pytestmark = pytest.mark.usefixtures("one_thread")


@cache
def model(name: str) -> nn.Module:
    return digits_cnn(pretrained=True) if name == "standard" else digits_cnn_adversarial()


@cache
def data() -> tuple[Tensor, Tensor]:
    return test_set(EXAMPLES)


@cache
def robust_accuracy(name: str, method: str, steps: int) -> tuple[float, ...]:
    """Robust accuracy (over all examples, clean mistakes count as broken) per eps in EPS."""
    x, y = data()
    result = run_attack(
        model(name),
        x,
        y,
        method=method,
        eps=EPS,
        steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    return tuple((1.0 - result.success.float().mean(dim=1)).tolist())


def test_adversarial_weights_are_bundled_and_small() -> None:
    path = adversarial_weights_path()
    assert path.is_file()
    assert path.stat().st_size < 1_000_000
    x, y = data()
    with torch.no_grad():
        clean = (digits_cnn_adversarial()(x).argmax(dim=1) == y).float().mean().item()
    assert clean >= 0.95


@pytest.mark.parametrize("steps", [20, 100])
@pytest.mark.parametrize("name", MODELS)
def test_apgd_ce_at_least_as_strong_as_pgd(name: str, steps: int) -> None:
    pgd = robust_accuracy(name, "pgd", steps)
    apgd = robust_accuracy(name, "apgd", steps)
    for eps, ours, theirs in zip(EPS, apgd, pgd, strict=True):
        assert ours <= theirs + 0.01, f"eps {eps}: APGD-CE-{steps} {ours:.3f} > PGD {theirs:.3f}"


def test_adversarial_training_makes_the_model_markedly_more_robust() -> None:
    standard = robust_accuracy("standard", "apgd", 100)
    adversarial = robust_accuracy("adversarial", "apgd", 100)
    for eps, weak, strong in zip(EPS, standard, adversarial, strict=True):
        assert strong >= weak + 0.25, f"eps {eps}: adversarial {strong:.3f}, standard {weak:.3f}"
    # At the training radius the standard model is all but broken; the trained one is not.
    assert standard[1] <= 0.1
    assert adversarial[1] >= 0.5
