"""Confidence intervals for the mean of values in [0, 1] or [-1, 1]: betting, valid for any law."""

from __future__ import annotations

import numpy as np

from robustness_checks.metrics.confidence_sequence import log_capital

GRID = 1001  # candidate means tested
CELLS = 2**22  # candidates x values per chunk of the computation


def bounded_mean_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """An interval for the mean of independent values in [0, 1] (Waudby-Smith and Ramdas's
    hedged betting confidence set, at `confidence`), whatever their distribution: a random
    model's per-example share of correct draws is one such value, so the interval accounts for
    the examples and the draws at once. Exact for no law, conservative for all."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if values.size == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    candidates = np.linspace(0.0, 1.0, GRID)
    step = max(1, CELLS // values.size)
    kept = np.concatenate(
        [_kept(values, candidates[i : i + step], alpha) for i in range(0, GRID, step)]
    )
    if not kept.any():
        mean = float(values.mean())
        return mean, mean
    width = 1.0 / (GRID - 1)
    inside = candidates[kept]
    return float(max(inside.min() - width, 0.0)), float(min(inside.max() + width, 1.0))


def _kept(values: np.ndarray, candidates: np.ndarray, alpha: float) -> np.ndarray:
    """Which candidate means the hedged capital never rejects (max(K+, K-) / 2 < 1 / alpha)."""
    log_up, log_down = log_capital(values, candidates, alpha)
    hedged = np.logaddexp(log_up, log_down) - np.log(2.0)
    return ~(hedged >= np.log(1.0 / alpha)).any(axis=-1)


def signed_mean_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """`bounded_mean_interval` for values in [-1, 1] (a difference of two shares)."""
    low, high = bounded_mean_interval(
        (np.asarray(values, dtype=np.float64) + 1.0) / 2.0, confidence
    )
    return 2.0 * low - 1.0, 2.0 * high - 1.0
