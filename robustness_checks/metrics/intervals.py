"""Confidence intervals: the percentile bootstrap over index draws; bootstrap resamples as draw
counts (for metrics computed in one fixed sorted order) with the BCa interval; Clopper-Pearson;
and the exact or conservative pieces of the ranking metrics' intervals.

Every two-sided interval at level c has one-sided error at most (1 - c) / 2 on each side, which
is what the strict and lenient decision rules rely on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Interval = tuple[float, float]


@dataclass(frozen=True)
class Estimate:
    """A metric's value, its interval (None: none computed) and how the interval was made."""

    value: float
    interval: Interval | None
    method: str


def bootstrap_interval(
    statistic: Callable[..., np.ndarray],
    samples: Sequence[np.ndarray],
    *,
    confidence: float,
    rng: np.random.Generator,
    resamples: int = 1000,
    elements_per_batch: int = 4_000_000,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `statistic` over paired `samples`.

    Examples are on the last axis of every sample; the same example indices are drawn for all of
    them. `statistic` must accept arrays with one extra leading axis (one row per resample) and
    return one value per row. Returns None with fewer than two examples or no resamples.
    """
    count = samples[0].shape[-1]
    if resamples <= 0 or count < 2:
        return None
    per_resample = max(sum(int(np.prod(sample.shape)) for sample in samples), 1)
    batch = max(1, min(resamples, elements_per_batch // per_resample))
    values = []
    for start in range(0, resamples, batch):
        indices = rng.integers(0, count, size=(min(batch, resamples - start), count))
        drawn = [np.moveaxis(sample[..., indices], -2, 0) for sample in samples]
        values.append(np.asarray(statistic(*drawn), dtype=np.float64))
    alpha = 1.0 - confidence
    low, high = np.quantile(np.concatenate(values), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def clopper_pearson(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Exact two-sided binomial interval for successes / trials; (0, 1) without trials. From
    beta quantiles: scipy's binomtest(...).proportion_ci(method="exact") bounds without its root
    search (equal to 1e-12, tests/test_ranking.py)."""
    if trials <= 0:
        return 0.0, 1.0
    lower, upper = binomial_bounds(successes, trials, side_error(confidence))
    return float(lower), float(upper)


def side_error(confidence: float) -> float:
    """The error allowed on each side of a two-sided interval at level `confidence`."""
    return (1.0 - confidence) / 2.0


# --- the bootstrap as resample counts ---------------------------------------------------------


def resample_batches(resamples: int, count: int, elements_per_batch: int = 4_000_000) -> list[int]:
    """Resamples per batch, so that one batch holds at most about `elements_per_batch` draws."""
    batch = max(1, min(resamples, elements_per_batch // max(count, 1)))
    return [min(batch, resamples - start) for start in range(0, resamples, batch)]


def bootstrap_indices(rng: np.random.Generator, sizes: Sequence[int], resamples: int) -> np.ndarray:
    """(resamples, sum(sizes)) example indices drawn with replacement within each stratum; the
    strata are consecutive blocks of examples of the given sizes (one block: plain resampling)."""
    blocks, start = [], 0
    for size in sizes:
        blocks.append(rng.integers(start, start + size, size=(resamples, size)))
        start += size
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def resample_counts(indices: np.ndarray, count: int | None = None) -> np.ndarray:
    """How often each of `count` examples (default: the row length) was drawn in each row of
    `indices`: a (rows, count) array, from one bincount over row-offset indices."""
    rows, width = indices.shape
    count = width if count is None else count
    flat = np.asarray(indices, dtype=np.int64) + np.arange(0, rows * count, count)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * count).reshape(rows, count)


def drawn_counts(rng: np.random.Generator, count: int, rows: int) -> np.ndarray:
    """Draw counts of `count` examples in `rows` bootstrap resamples: the same draws as
    `resample_counts(bootstrap_indices(rng, (count,), rows))`, offset in place."""
    indices = rng.integers(0, count, size=(rows, count))
    indices += np.arange(0, rows * count, count)[:, None]
    return np.bincount(indices.ravel(), minlength=rows * count).reshape(rows, count)


def acceleration(jackknife: Sequence[np.ndarray]) -> float:
    """BCa's acceleration from leave-one-out values, one array per stratum (Efron and
    Tibshirani 1993, 14.3 and 18.3): a = sum d^3 / (6 (sum d^2)^(3/2)), d the jackknife
    influence values, each stratum's scaled by its size."""
    influence = [
        (values.size - 1.0) / values.size * (values.mean() - values)
        for values in jackknife
        if values.size > 1
    ]
    if not influence:
        return 0.0
    d = np.concatenate(influence)
    spread = float(np.sum(d**2))
    return float(np.sum(d**3) / (6.0 * spread**1.5)) if spread > 0 else 0.0


def bca_interval(
    value: float, drawn: np.ndarray, jackknife: Sequence[np.ndarray], confidence: float
) -> Interval | None:
    """The bias-corrected and accelerated bootstrap interval (Efron 1987): percentiles of the
    resampled values at levels moved by the median bias z0 and the acceleration a. None when
    fewer than half the resamples have a value, the resamples all lie on one side of the value,
    or the interval collapses."""
    from scipy import stats

    finite = drawn[np.isfinite(drawn)]
    if finite.size < max(drawn.size / 2, 1) or not all(np.isfinite(v).all() for v in jackknife):
        return None
    below = (np.sum(finite < value) + 0.5 * np.sum(finite == value)) / finite.size
    if not 0.0 < below < 1.0:
        return None
    bias = stats.norm.ppf(below)
    shift = acceleration(jackknife)
    z = bias + stats.norm.ppf([side_error(confidence), 1.0 - side_error(confidence)])
    if np.any(1.0 - shift * z <= 0):
        return None
    low, high = np.quantile(finite, stats.norm.cdf(bias + z / (1.0 - shift * z)))
    return (float(low), float(high)) if low < high else None


# --- exact and conservative intervals ---------------------------------------------------------


def binomial_bounds(
    successes: np.ndarray, trials: np.ndarray, error: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Clopper-Pearson bounds (lower, upper), each wrong with probability at most
    `error`; (0, 1) without trials."""
    from scipy import stats

    successes = np.asarray(successes, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = stats.beta.ppf(error, successes, trials - successes + 1)
        upper = stats.beta.ppf(1.0 - error, successes + 1, trials - successes)
    lower = np.where(successes > 0, lower, 0.0)
    upper = np.where(successes < trials, upper, 1.0)
    return lower, upper


def binomial_range(trials: int, rate: float, error: float) -> tuple[int, int]:
    """(low, high) with P(K < low) <= error / 2 and P(K > high) <= error / 2 for K ~ Bin(trials,
    rate)."""
    from scipy import stats

    cdf = stats.binom.cdf(np.arange(trials + 1), trials, rate)
    low = int(np.sum(cdf < error / 2))  # the first k whose cdf reaches error / 2
    high = int(np.sum(cdf < 1.0 - error / 2))
    return low, min(high, trials)


def quantile_ranks(count: int, level: float, error: float) -> tuple[int, int]:
    """Ranks (j, k), 1-based in ascending order, whose order statistics bound the `level`
    quantile t* = max{t: P(X >= t) >= 1 - level} of a sample of `count`: P(X_(j) > t*) <= error
    and P(X_(k) < t*) <= error. j = 0 stands for minus infinity, k = count + 1 for infinity.

    #{X_i <= t*} is at least Bin(count, level) and #{X_i < t*} at most Bin(count, level)
    (stochastically), which holds with ties too.
    """
    from scipy import stats

    ranks = np.arange(count + 1)
    below = int(np.sum(stats.binom.cdf(ranks, count, level) <= error))  # P(Bin <= j - 1)
    above = stats.binom.sf(ranks - 1, count, level)  # P(Bin >= k) for k = 0..count
    reach = np.flatnonzero(above <= error)
    return below, int(reach[0]) if reach.size else count + 1


def hoeffding_interval(value: float, size: int, confidence: float) -> Interval:
    """value +- sqrt(log(1 / e) / (2 size)), e = (1 - c) / 2, clipped to [0, 1]: valid for a
    two-sample U-statistic with a kernel in [0, 1] (AUROC) when `size` is the smaller sample's
    size (Hoeffding 1963, section 5)."""
    half = math.sqrt(math.log(1.0 / side_error(confidence)) / (2.0 * size))
    return max(0.0, value - half), min(1.0, value + half)
