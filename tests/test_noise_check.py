"""The `noise` check's decision rule on affine models with closed-form probabilities."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

import robustness_checks


def affine(distance: float, dim: int = 32) -> tuple[torch.nn.Module, torch.Tensor, float]:
    """A 2-class affine model, one input at `distance` (in sigma units) from the boundary."""
    model = torch.nn.Linear(dim, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[0, 0] = 1.0
        model.weight[1, 0] = -1.0
    x = torch.zeros(1, dim)
    x[0, 0] = distance * 0.1  # margin 2 x0, sigma ||w0 - w1|| = 2 sigma: p = Phi(-x0 / sigma)
    truth = float(stats.norm.sf(distance))
    return model, x, truth


def one_input(
    model: torch.nn.Module, x: torch.Tensor, **options: object
) -> robustness_checks.CheckResult:
    """The noise check on the single input `x` (label 0), sigma 0.1, unbounded inputs."""
    return robustness_checks.noise(
        model, (x, torch.zeros(1, dtype=torch.long)), sigma=0.1, bounds=None, **options
    )


@pytest.mark.parametrize("estimator", ["importance", "splitting"])
def test_small_probability_within_the_bound_passes(estimator: str) -> None:
    model, x, truth = affine(4.75)  # p about 1e-6
    result = one_input(
        model,
        x,
        estimator=estimator,
        max_probability=1e-4,
        max_evaluations=20000,
    )
    assert result, result.message
    row = result.details["inputs"][0]
    assert row["ci"][0] <= truth <= row["ci"][1]
    assert row["outcome"] == "within"
    assert result.message.startswith("all 1 inputs within max_probability 0.0001")
    assert result.evaluations >= row["evaluations"]


def test_probability_over_the_bound_fails_and_says_so() -> None:
    model, x, truth = affine(2.0)  # p about 0.023
    result = one_input(
        model,
        x,
        estimator="mc",
        max_probability=1e-3,
    )
    assert not result
    assert "is over max_probability 0.001" in result.message
    assert result.value == pytest.approx(truth, rel=0.3)


def test_budget_too_small_is_inconclusive() -> None:
    model, x, _ = affine(3.0)  # p about 1.3e-3, next to the bound
    result = one_input(
        model,
        x,
        estimator="mc",
        max_probability=1.5e-3,
        max_evaluations=200,
    )
    assert not result
    assert result.details["inputs"][0]["outcome"] == "inconclusive"
    assert "is inconclusive: the budget of 200 evaluations" in result.message


def test_inputs_are_the_first_correctly_classified() -> None:
    model, x, _ = affine(3.0)
    data = (torch.cat([-x, x, x]), torch.zeros(3, dtype=torch.long))  # the first one is wrong
    result = robustness_checks.noise(
        model, data, sigma=0.1, estimator="mc", inputs=2, bounds=None, max_evaluations=500
    )
    assert [row["index"] for row in result.details["inputs"]] == [1, 2]
    assert result.comparison is None and result.passed


def test_unreliable_error_estimate_is_inconclusive_not_passed() -> None:
    from test_noise_estimators import HiddenMode

    # p is about 1e-3 (a region without a gradient) while the design point alone says 8.5e-6:
    # below 1e-2 the point rule would pass on an interval the diagnostics do not trust.
    def hidden(settle_at_bound: bool) -> robustness_checks.CheckResult:
        return robustness_checks.noise(
            HiddenMode(),
            (torch.zeros(1, 16), torch.zeros(1, dtype=torch.long)),
            sigma=1.0,
            max_probability=0.01,
            bounds=None,
            max_evaluations=20000,
            settle_at_bound=settle_at_bound,
        )

    result = hidden(False)  # importance sampling alone, whose diagnostics are under test
    row = result.details["inputs"][0]
    assert row["unreliable"], row
    assert row["outcome"] == "inconclusive"
    assert result.outcome == "inconclusive"
    assert "its reported error cannot be trusted (effective sample size" in result.message

    # Decided at the bound, Monte Carlo needs no gradient: p (about 1e-3) is shown below 0.01.
    settled = hidden(True)
    assert settled and settled.details["inputs"][0]["outcome"] == "within"
    assert settled.details["inputs"][0]["evaluations"] < 2000
