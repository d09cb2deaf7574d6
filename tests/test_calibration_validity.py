"""Intervals of the calibration check: the weighted bootstrap, the bounds' building blocks, the
validity cases' population values, and the validity harness on every metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import robustness_checks
from robustness_checks.checks.calibration import CalibrationCheck, measure_calibration
from robustness_checks.errors import InsufficientData, RobustnessWarning
from robustness_checks.metrics import calibration_bias as cb
from robustness_checks.metrics import calibration_bounds as cbounds
from robustness_checks.metrics import calibration_intervals as ci
from robustness_checks.metrics.calibration import (
    adaptive_calibration_error,
    expected_calibration_error,
)
from robustness_checks.validity import calibration as validity

METRICS = tuple(validity.SETTINGS)


def sample(n: int, seed: int = 0, temperature: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidences and correctness of an overconfident 10-class model."""
    probabilities, labels = validity.draw(
        validity.TOP_LABEL, temperature, n, np.random.default_rng(seed)
    )
    return probabilities.max(axis=1), (probabilities.argmax(axis=1) == labels).astype(float)


def test_bootstrap_counts_are_the_index_bootstrap() -> None:
    counts = cbounds.bootstrap_counts(np.random.default_rng(3), 50, 20)
    indices = np.random.default_rng(3).integers(0, 50, size=(20, 50), dtype=np.int32)
    expected = np.stack([np.bincount(row, minlength=50) for row in indices])
    np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("equal_mass", [False, True])
def test_weighted_bootstrap_equals_the_metric_on_index_resamples(equal_mass: bool) -> None:
    confidence, correct = sample(300)
    confidence = np.round(confidence, 2)  # ties: equal-mass bins break them by correctness
    interval = ci.binned_interval(
        confidence,
        correct,
        bins=15,
        equal_mass=equal_mass,
        confidence_level=0.95,
        rng=np.random.default_rng(8),
        resamples=200,
    )
    indices = np.random.default_rng(8).integers(0, 300, size=(200, 300), dtype=np.int32)
    if equal_mass:  # resampled in sorted order
        order = np.lexsort((correct, confidence))
        indices = order[indices]
    metric = adaptive_calibration_error if equal_mass else expected_calibration_error
    expected = metric(confidence[indices], correct[indices], 15)
    np.testing.assert_allclose(np.abs(interval.boot + interval.point).sum(axis=1), expected)
    assert interval.plugin == pytest.approx(float(metric(confidence, correct, 15)))


def test_smooth_operator_reproduces_relplot_discretisation() -> None:
    rng = np.random.default_rng(0)
    nodes = 257
    f = rng.integers(0, nodes, 400) / (nodes - 1)  # on the nodes: spreading is exact
    y = (rng.random(400) < f**1.5).astype(float)
    for sigma in (0.004, 0.05, 0.3):
        exact = cb._smooth_ece_at(f[None], (f - y)[None], np.array([sigma]))[0]
        operator = cb.smooth_ece_operator(sigma, np.linspace(0, 1, nodes), 10**6)
        mass = np.bincount(np.round(f * (nodes - 1)).astype(int), minlength=nodes)
        residual = np.bincount(np.round(f * (nodes - 1)).astype(int), f - y, nodes)
        assert np.abs(residual @ operator).sum() / (mass @ operator).sum() == pytest.approx(
            exact, rel=1e-5
        )
        weighted = cb.smooth_ece_weighted(f, f - y, np.ones_like(f), sigma)
        assert weighted == pytest.approx(exact, rel=1e-5)


def test_folded_lower_is_one_sided_far_from_zero_and_exact_at_zero() -> None:
    assert cbounds.folded_lower(10.0, 1.0, 0.025, 10**6) == pytest.approx(10 - 1.95996, abs=1e-4)
    assert cbounds.folded_lower(-10.0, 1.0, 0.025, 10**6) == pytest.approx(10 - 1.95996, abs=1e-4)
    assert cbounds.folded_lower(2.0, 1.0, 0.025, 10**6) == 0.0
    # At mu = 0 the bound is positive exactly when P_0(|t| >= |mean| / se) < error.
    edge = stats.t.isf(0.0125, 30)
    assert cbounds.folded_lower(edge * 1.001, 1.0, 0.025, 30) > 0.0
    assert cbounds.folded_lower(edge * 0.999, 1.0, 0.025, 30) == 0.0


def test_gap_lower_misses_a_zero_gap_at_its_error_rate() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, size=(4000, 100))
    correct = (rng.random(confidence.shape) < confidence).astype(float)
    positive = [
        cbounds.gap_lower(row, float(np.mean(c * (1 - c))), 0.025) > 0
        for row, c in zip(correct - confidence, confidence, strict=True)
    ]
    assert stats.binomtest(int(np.sum(positive)), 4000, 0.025).pvalue > 0.001


def test_abs_sum_lower_charges_signed_cells_their_noise_only() -> None:
    rng = np.random.default_rng(2)
    boot = rng.normal(0, 0.01, size=(4000, 3))
    strong = cbounds.abs_sum_lower(np.array([0.5, -0.5, 0.5]), boot, None, 0.025)
    # All signs known: the critical value is the 0.98125 quantile of a N(0, 3e-4) sum.
    assert strong == pytest.approx(1.5 - stats.norm.isf(0.01875) * 0.01 * np.sqrt(3), abs=2e-3)
    assert cbounds.abs_sum_lower(np.zeros(3), boot, boot, 0.025) == 0.0
    # A cell near 0 is charged |noise|: the bound falls below the all-signed one.
    assert cbounds.abs_sum_lower(np.array([0.5, -0.5, 0.005]), boot, None, 0.025) < strong - 0.005


def test_max_gap_interval_by_hand() -> None:
    # 400 examples at confidence 0.9 (bin 14), 300 correct: gap -0.15; 5 at 0.35, all wrong.
    confidence = np.r_[np.full(400, 0.9), np.full(5, 0.35)]
    correct = np.r_[np.ones(300), np.zeros(100), np.zeros(5)]
    low, high = ci.max_gap_interval(confidence, correct, bins=15, classes=3, confidence_level=0.95)
    # Global gap: |mean(correct - confidence)| = 61.75 / 405 = 0.152, minus about 2.24 se.
    se = np.std(correct - confidence, ddof=1) / np.sqrt(405)
    assert low == pytest.approx(61.75 / 405 - stats.t.isf(0.0125, 404) * se, abs=1e-6)
    # Bin (14/15, 1] is possible (above 1/3) and empty: its gap may be up to 1.
    assert high == 1.0
    filled = ci.max_gap_interval(
        confidence[:400], correct[:400], bins=1, classes=3, confidence_level=0.95
    )
    accuracy = stats.binomtest(300, 400).proportion_ci(1 - 0.0125 * 0.9 * 2, method="exact")
    assert filled[1] == pytest.approx(0.9 + 0.0 - accuracy.low + np.sqrt(np.log(1 / 0.00125) / 800))


@pytest.mark.parametrize("metric", METRICS)
def test_population_values_match_a_fresh_sample(metric: str) -> None:
    setting = validity.SETTINGS[metric]
    for target, parameter in zip(
        (setting.bound, 2 * setting.bound), setting.parameters, strict=True
    ):
        fresh = validity.population_value(metric, setting.family, parameter, 300_000, seed=5)
        assert fresh == pytest.approx(target, abs=1e-3 + 0.003 * target), (metric, target)


@pytest.mark.parametrize("metric", METRICS)
def test_measurement_is_deterministic_and_needs_two_examples(metric: str) -> None:
    params = CalibrationCheck(type="calibration", name="c", metric=metric, max=0.1, bootstrap=200)
    probabilities, labels = validity.draw(validity.TOP_LABEL, 1.5, 300, np.random.default_rng(0))
    first, second = (
        measure_calibration(
            params, probabilities, labels, confidence=0.95, rng=np.random.default_rng(4)
        )
        for _ in range(2)
    )
    assert first == second
    assert first.ci is not None and first.ci[0] <= first.value <= first.ci[1]
    with pytest.raises(InsufficientData, match="at least 2 examples"):
        measure_calibration(
            params, probabilities[:1], labels[:1], confidence=0.95, rng=np.random.default_rng(4)
        )
    alone = params.model_copy(update={"bootstrap": 0})
    point = measure_calibration(
        alone, probabilities[:1], labels[:1], confidence=0.95, rng=np.random.default_rng(4)
    )
    assert point.ci is None


DEGENERATE = {
    "two examples": validity.draw(validity.TOP_LABEL, 1.5, 2, np.random.default_rng(2)),
    "certain and right": (np.eye(3)[[0, 1, 2, 0]], np.array([0, 1, 2, 0])),
    "certain and wrong": (np.eye(3)[[0, 1, 2, 0]], np.array([1, 2, 0, 1])),
    "uniform": (np.full((6, 3), 1 / 3), np.array([0, 1, 2, 0, 1, 2])),
    "one confidence": (np.tile([0.7, 0.2, 0.1], (8, 1)), np.zeros(8, dtype=int)),
}


@pytest.mark.parametrize("metric", METRICS)
def test_degenerate_samples_give_finite_intervals_around_the_value(metric: str) -> None:
    params = CalibrationCheck(type="calibration", name="c", metric=metric, max=0.1, bootstrap=200)
    for name, (probabilities, labels) in DEGENERATE.items():
        with np.errstate(invalid="raise"):  # no NaN on the way
            measured = measure_calibration(
                params, probabilities, labels, confidence=0.95, rng=np.random.default_rng(0)
            )
        if not np.isfinite(measured.value):  # nll of a label given probability 0
            assert metric == "nll" and measured.ci is None
            continue
        low, high = measured.ci
        assert np.isfinite([low, high]).all() and low <= measured.value <= high, name


class LogitTable(nn.Module):
    """A 'model' whose input is an example index and whose output is that example's logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0].long()]


def test_one_example_is_inconclusive_not_an_error() -> None:
    model = LogitTable(torch.tensor([[2.0, 0.0, -1.0]]))
    data = (torch.zeros(1, 1), torch.tensor([0]))
    with pytest.warns(RobustnessWarning, match="at least 2 examples"):
        result = robustness_checks.calibration(
            model, data, max=0.1, bounds=None, decision="lenient"
        )
    assert result.outcome == "inconclusive" and result.passed
