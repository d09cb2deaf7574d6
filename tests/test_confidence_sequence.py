"""Anytime-valid decisions for a proportion: error rates at the bound over many seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from robustness_checks.metrics.confidence_sequence import confidence_sequence, settled

SEEDS = 400
CONFIDENCE = 0.95


def _slack(rate: float, seeds: int) -> float:
    """The 99% binomial quantile of the count of errors at `rate`, as a fraction."""
    return float(stats.binom.ppf(0.99, seeds, rate)) / seeds


@pytest.mark.parametrize("bound", [0.05, 0.3, 0.5])
def test_repeated_looks_keep_both_error_rates_at_the_bound(bound: float) -> None:
    """Bernoulli data exactly at the bound, looked at after every example for 2000 examples:
    'shown above' and 'shown below' each happen at most (1 - c) / 2 of the time."""
    rng = np.random.default_rng(int(bound * 1000))
    x = (rng.random((SEEDS, 2000)) < bound).astype(np.float64)
    verdict = settled(x, bound, CONFIDENCE)
    allowed = _slack((1 - CONFIDENCE) / 2, SEEDS)
    assert (verdict == 1).mean() <= allowed
    assert (verdict == -1).mean() <= allowed


def test_a_proportion_far_from_the_bound_is_settled_early() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random((SEEDS, 400)) < 0.1).astype(np.float64)
    assert (settled(x, 0.3, CONFIDENCE) == -1).mean() >= 0.99
    assert (settled(x[:, :100], 0.3, CONFIDENCE) == -1).mean() >= 0.8


def test_confidence_sequence_covers_the_mean_at_every_time() -> None:
    rng = np.random.default_rng(2)
    misses = 0
    for _ in range(100):
        x = (rng.random(500) < 0.37).astype(np.float64)
        low, high = confidence_sequence(x, CONFIDENCE)
        misses += not low <= 0.37 <= high
    assert misses <= _slack(1 - CONFIDENCE, 100) * 100
    low, high = confidence_sequence((rng.random(500) < 0.37).astype(np.float64), CONFIDENCE)
    assert high - low < 0.2  # and it is not vacuous
