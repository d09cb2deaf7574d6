"""Anytime-valid inference for a proportion: betting test martingales and confidence sequences.

Waudby-Smith and Ramdas (JRSS-B 2024), "Estimating means of bounded random variables by
betting". For observations X_1, X_2, ... in [0, 1] with mean p, and a candidate mean m,

    K+_t(m) = prod_{i<=t} (1 + l+_i (X_i - m)),   K-_t(m) = prod_{i<=t} (1 - l-_i (X_i - m))

are nonnegative martingales when p = m (the bets l_i are predictable: they use X_1..X_{i-1}
only). By Ville's inequality P(sup_t K_t >= 1 / a) <= a, so looking after every batch, or after
every example, never inflates the error: stopping when a bound is settled is valid.
Leading axes of `x` are independent sequences (vectorised simulation).
"""

from __future__ import annotations

import numpy as np

TRUNCATION = 0.5  # bets stay within half of the largest that keeps the capital positive


def _bets(x: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable plug-in bets l_i (WSR eq. 26): sqrt(2 log(2/a) / (var_{i-1} i log(1 + i)))."""
    t = np.arange(1, x.shape[-1] + 1, dtype=np.float64)
    previous = np.concatenate([np.zeros_like(x[..., :1]), np.cumsum(x, axis=-1)[..., :-1]], -1)
    mean = (0.5 + previous) / t  # the running mean before observation i (prior 1/2)
    squares = np.cumsum(
        (x - np.concatenate([np.full_like(x[..., :1], 0.5), mean[..., 1:]], -1)) ** 2, axis=-1
    )
    before = np.concatenate([np.zeros_like(x[..., :1]), squares[..., :-1]], -1)
    variance = (0.25 + before) / t
    return np.sqrt(2.0 * np.log(2.0 / alpha) / (variance * t * np.log1p(t)))


def log_capital(x: np.ndarray, m: float | np.ndarray, alpha: float) -> tuple[np.ndarray, ...]:
    """log K+_t(m) and log K-_t(m) for every prefix t: arrays shaped like `x` (m broadcast on a
    new trailing axis when it is an array of candidates)."""
    x = np.asarray(x, dtype=np.float64)
    bets = _bets(x, alpha)
    m_arr = np.asarray(m, dtype=np.float64)
    if m_arr.ndim:
        x, bets = x[..., None, :], bets[..., None, :]
        m_arr = m_arr[..., :, None]
    up = np.minimum(bets, TRUNCATION / np.maximum(m_arr, 1e-12))
    down = np.minimum(bets, TRUNCATION / np.maximum(1.0 - m_arr, 1e-12))
    log_up = np.cumsum(np.log1p(up * (x - m_arr)), axis=-1)
    log_down = np.cumsum(np.log1p(-down * (x - m_arr)), axis=-1)
    return log_up, log_down


def settled(x: np.ndarray, bound: float, confidence: float) -> np.ndarray:
    """Per sequence: +1 once p > bound is shown, -1 once p < bound is shown, 0 while neither.

    Each side is a test at level (1 - confidence) / 2, so the pair matches a two-sided interval
    at `confidence`; the first side to cross decides (crossing both is impossible in practice
    and reported as the first)."""
    alpha = 1.0 - confidence
    log_up, log_down = log_capital(x, bound, alpha)
    threshold = np.log(2.0 / alpha)
    above = np.maximum.accumulate(log_up, axis=-1)[..., -1] >= threshold
    below = np.maximum.accumulate(log_down, axis=-1)[..., -1] >= threshold
    first_above = np.argmax(log_up >= threshold, axis=-1)
    first_below = np.argmax(log_down >= threshold, axis=-1)
    both = above & below
    return np.where(
        both, np.where(first_above <= first_below, 1, -1), np.where(above, 1, -below.astype(int))
    )


def confidence_sequence(x: np.ndarray, confidence: float, grid: int = 1001) -> tuple[float, float]:
    """The running intersection of the betting confidence sets for the mean of `x` (1-d), at
    `confidence`, on a grid of candidate means: valid at this and every earlier time at once."""
    alpha = 1.0 - confidence
    candidates = np.linspace(0.0, 1.0, grid)
    log_up, log_down = log_capital(np.asarray(x, dtype=np.float64), candidates, alpha)
    # The hedged process: reject m once max(K+, K-) / 2 reaches 1 / alpha at any time so far.
    hedged = np.logaddexp(log_up, log_down) - np.log(2.0)
    rejected = (hedged >= np.log(1.0 / alpha)).any(axis=-1)
    kept = candidates[~rejected]
    if kept.size == 0:
        mean = float(np.mean(x))
        return mean, mean
    step = 1.0 / (grid - 1)
    return float(max(kept.min() - step, 0.0)), float(min(kept.max() + step, 1.0))
