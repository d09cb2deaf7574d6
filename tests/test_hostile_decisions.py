"""Decisions that passed or failed wrongly, found from outside: each case is a regression test,
run end to end through the check functions (the harness in test_decision_validity.py measures
the same rules on every type's declared populations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import robustness_checks as rc


def _selective_draw(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A two-class model that always predicts class 0 with a random confidence; the label is 0
    with probability 0.95, whatever the confidence: accuracy 0.95 at every coverage."""
    logits = torch.zeros(n, 2, dtype=torch.float64)
    logits[:, 0] = torch.as_tensor(rng.uniform(0.5, 5.0, n))
    labels = torch.as_tensor((rng.random(n) >= 0.95).astype(np.int64))
    return logits.float(), labels


def test_strict_no_longer_passes_accuracy_at_coverage_on_twenty_examples() -> None:
    """True accuracy at coverage 0.8 is 0.95, the bound 0.99: strict passed 45 of 100 draws
    at n = 20 (the bootstrap interval [1, 1]); the exact interval is never of zero width."""
    passes = 0
    for seed in range(100):
        data = _selective_draw(20, np.random.default_rng(seed))
        result = rc.selective(
            torch.nn.Identity(),
            data,
            coverage=0.8,
            min_accuracy=0.99,
            decision="strict",
            bounds=None,
            device="cpu",
        )
        assert result.ci is not None and result.ci[0] < result.ci[1]
        passes += result.passed
    assert passes <= 5


@pytest.mark.parametrize("check", ["ood", "selective", "failure_prediction"])
def test_one_example_never_passes_strict(check: str) -> None:
    """At n = 1 every bootstrap-interval check passed strict (ood reported [0.5, 0.5])."""
    x, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    fields = {
        "ood": {"ood_data": torch.tensor([[0.1, 0.0]]), "min": 0.5},
        "selective": {"coverage": 0.8, "min_accuracy": 0.5},
        "failure_prediction": {"min": 0.5},
    }[check]
    for rule in ("strict", "lenient"):
        result = rc.run_check(
            check, torch.nn.Identity(), (x, y), decision=rule, bounds=None, device="cpu", **fields
        )
        assert result.outcome == "inconclusive", result.message
        assert result.passed is (rule == "lenient")


def test_lenient_ece_fails_a_clearly_miscalibrated_model() -> None:
    """Population ECE 0.071 (labels drawn from softmax(z), the model returns 1.3 z) against
    max 0.035 at n = 1000: lenient failed 6 of 40 seeds; the best valid test has about 74%
    power on this population (docs/decisions.md)."""
    failed = 0
    seeds = 100
    for seed in range(seeds):
        generator = torch.Generator().manual_seed(seed)
        z = 3.0 * torch.randn(1000, 10, generator=generator)
        labels = torch.multinomial(z.softmax(dim=1), 1, generator=generator).squeeze(1)
        result = rc.calibration(
            torch.nn.Identity(),
            (1.3 * z, labels),
            metric="ece",
            max=0.035,
            decision="lenient",
            bounds=None,
            device="cpu",
            seed=seed,
        )
        failed += not result.passed
    assert failed >= 0.6 * seeds
