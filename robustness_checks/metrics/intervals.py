"""Confidence intervals: percentile bootstrap over examples, and Clopper-Pearson (scipy.stats)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats


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
    """Exact two-sided binomial interval for successes / trials; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    interval = stats.binomtest(successes, trials).proportion_ci(
        confidence_level=confidence, method="exact"
    )
    return float(interval.low), float(interval.high)
