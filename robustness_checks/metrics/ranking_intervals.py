"""Exact and conservative intervals of ranking metrics: accuracy at coverage, FPR95, AURC, AP."""

from __future__ import annotations

import math

import numpy as np

from robustness_checks.metrics.intervals import (
    binomial_bounds,
    binomial_range,
    clopper_pearson,
    quantile_ranks,
    side_error,
)
from robustness_checks.metrics.ranking_resampled import Ranked, ranked

# --- exact intervals ----------------------------------------------------------------------------


def correct_count_range(item: Ranked) -> tuple[np.ndarray, np.ndarray]:
    """For j = 0..n, the fewest and the most correct inputs among the j most certain, over
    every order of the tied inputs."""
    right = ~item.label
    starts = np.r_[0, item.ends[:-1] + 1]
    group = np.searchsorted(item.ends, np.arange(item.count))
    right_before = np.r_[0, np.cumsum(right)][starts]
    right_in = np.add.reduceat(right.astype(np.int64), starts)
    wrong_in = item.ends - starts + 1 - right_in
    taken = np.arange(1, item.count + 1) - starts[group]  # inputs taken from the slot's group
    fewest = right_before[group] + np.maximum(0, taken - wrong_in[group])
    most = right_before[group] + np.minimum(taken, right_in[group])
    return np.r_[0, fewest], np.r_[0, most]


def selective_accuracy_interval(
    uncertainty: np.ndarray, correct: np.ndarray, coverage: float, confidence: float
) -> tuple[float, float]:
    """Exact interval of the population accuracy on the `coverage` most certain inputs.

    K, the number of sample inputs below the population's coverage quantile, is Bin(n, coverage)
    and unknown; given K, those inputs are the K most certain and their correct count is
    Bin(K, accuracy). So the smallest one-sided Clopper-Pearson lower bound (and the largest upper
    bound) over every K in a range that holds K with probability 1 - e bounds the accuracy, each
    side wrong with probability at most e + e = (1 - c) / 2; ties take each side's worst order.
    """
    item = ranked(uncertainty, correct)
    error = side_error(confidence) / 2.0
    low, high = binomial_range(item.count, coverage, error)
    fewest, most = correct_count_range(item)
    kept = np.arange(low, high + 1)
    lower, _ = binomial_bounds(fewest[kept], kept, error)
    _, upper = binomial_bounds(most[kept], kept, error)
    return float(lower.min()), float(upper.max())


def fpr_at_tpr_interval(
    scores_negative: np.ndarray, scores_positive: np.ndarray, tpr: float, confidence: float
) -> tuple[float, float]:
    """Exact interval of the population FPR at TPR `tpr`: order statistics of the positives
    bracket their (1 - tpr) quantile, and one-sided Clopper-Pearson bounds count the negatives at
    or above each bracket (given the labels the negatives are independent of the positives); each
    side is wrong with probability at most e + e = (1 - c) / 2."""
    negative = np.asarray(scores_negative, dtype=np.float64).ravel()
    positive = np.sort(np.asarray(scores_positive, dtype=np.float64).ravel())
    error = side_error(confidence) / 2.0
    low_rank, high_rank = quantile_ranks(positive.size, 1.0 - tpr, error)
    low = positive[low_rank - 1] if low_rank > 0 else -np.inf
    high = positive[high_rank - 1] if high_rank <= positive.size else np.inf
    above = np.array([np.sum(negative >= high), np.sum(negative >= low)])
    lower, upper = binomial_bounds(above, np.full(2, negative.size), error)
    return float(lower[0]), float(upper[1])


def aurc_bounds(errors: int, count: int, confidence: float) -> tuple[float, float]:
    """A conservative interval of the population AURC from the error rate r alone: for any
    ranking r + (1 - r) log(1 - r) <= AURC <= r (1 + log(1 / r)), since the risk at coverage g is
    at least max(0, (r - 1 + g) / g) and at most min(1, r / g); r by Clopper-Pearson."""
    low, high = clopper_pearson(errors, count, confidence)
    lower = low + (1.0 - low) * math.log1p(-low) if low < 1.0 else 1.0
    upper = high * (1.0 - math.log(high)) if high > 0.0 else 0.0
    return lower, upper


def average_precision_floor(share: float, fpr_bound: float, recall: float) -> float:
    """A lower bound of the population average precision int_0^1 precision(r) dr, from a
    positive share at most the true one and a bound at least the true FPR at TPR `recall`.

    Up to that recall the FPR is at most the bound, so precision(r) >= s r / (s r + (1 - s) f);
    beyond it the FPR is at most 1. Both integrals have closed forms.
    """
    if share <= 0.0:
        return 0.0
    odds = (1.0 - share) / share

    def integral(low: float, high: float, offset: float) -> float:
        """int_low^high r / (r + offset) dr."""
        if offset <= 0.0:
            return high - low
        return high - low - offset * math.log((high + offset) / (low + offset))

    return integral(0.0, recall, odds * fpr_bound) + integral(recall, 1.0, odds)
