"""The bounds calibration intervals are built from: resampling, gaps, selection, means.

The plug-in calibration errors are sums of absolute values of noisy means (one per bin, class and
bin, or mesh point), so they are biased upwards, most when the model is well calibrated. Each
interval here is the pair of one-sided bounds at error `e = (1 - c) / 2` each:

- Upper bounds use that bias: E[plug-in] >= population value (|.| is convex, so E|X| >= |E X|
  per cell), and a bootstrap bound on E[plug-in] bounds the population value
  (`bootstrap_upper`).
- Lower bounds take the larger of two bounds, each at part of `e` (Bonferroni):
  * a *global gap*: every L1 calibration error of the top label is at least
    |E[correct - confidence]| (the sum of signed gaps never exceeds the sum of their absolute
    values), a plain mean with no bias, bounded by inverting the folded t distribution
    (`gap_lower`). It carries the power for a model that is over- or underconfident
    throughout, where per-bin evidence is thin.
  * a *cell* bound: the plug-in minus a critical value for sum_c (|X_c| - |mu_c|), using
    two-step moment selection (Romano, Shaikh and Wolf 2014): a cell whose sign is known at
    error `b` contributes plain noise, a cell whose sign is not contributes |noise| as if
    calibrated (`abs_sum_lower`).

Resampling is done as resample counts (one bincount over row-offset indices, the same draws as an
index bootstrap) times per-example matrices, so a 1000-resample interval on 1000 examples takes
milliseconds. Functions take a `rng` and are deterministic given it.

The intervals of each metric that use them are in `calibration_intervals` (binned, max,
classwise, L2) and `smooth_interval` (smooth ECE).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse

Interval = tuple[float, float]

GLOBAL_SHARE = 0.8  # share of a lower bound's error spent on the global (or threshold) gaps
SELECTION_SHARE = 0.25  # share of the cell bound's error spent on knowing the cells' signs
ELEMENTS_PER_BATCH = 4_000_000


# --- resampling ---------------------------------------------------------------------------------


def bootstrap_counts(rng: np.random.Generator, count: int, resamples: int) -> np.ndarray:
    """(resamples, count) float counts of each example in index-bootstrap resamples: row r
    holds np.bincount(rng.integers(0, count, count, dtype=np.int32)) of that row's draws."""
    indices = rng.integers(0, count, size=(resamples, count), dtype=np.int32)
    indices += np.arange(0, resamples * count, count, dtype=np.int32)[:, None]
    tally = np.bincount(indices.ravel(), minlength=resamples * count)
    return tally.reshape(resamples, count).astype(np.float64)


def replicate(
    rng: np.random.Generator,
    count: int,
    resamples: int,
    statistic: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """statistic(counts) over all bootstrap resamples, computed in batches of rows."""
    batch = max(1, min(resamples, ELEMENTS_PER_BATCH // max(count, 1)))
    parts = [
        statistic(bootstrap_counts(rng, count, min(batch, resamples - first)))
        for first in range(0, resamples, batch)
    ]
    return np.concatenate(parts)


def redraw(
    rng: np.random.Generator,
    probability: np.ndarray,
    resamples: int,
    statistic: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """statistic(deviation) over `resamples` consistency redraws (Broecker and Smith 2007):
    deviation = Bernoulli(probability) - probability per example, a (rows, n) array."""
    count = probability.shape[-1]
    batch = max(1, min(resamples, ELEMENTS_PER_BATCH // max(count, 1)))
    parts = []
    for first in range(0, resamples, batch):
        drawn = rng.random((min(batch, resamples - first), count)) < probability
        parts.append(statistic(drawn - probability))
    return np.concatenate(parts)


def cell_matrix(cells: np.ndarray, size: int, values: np.ndarray | None = None) -> sparse.csr_array:
    """(n, size) sparse matrix with `values` (default 1) at (example, its cell); `cells` may hold
    several cells per example (shape (n, k))."""
    from scipy import sparse

    cells = np.asarray(cells).reshape(len(cells), -1)
    rows = np.repeat(np.arange(len(cells)), cells.shape[1])
    data = np.ones(cells.size) if values is None else np.asarray(values, float).reshape(-1)
    return sparse.csr_array((data, (rows, cells.reshape(-1))), shape=(len(cells), size))


def times(rows: np.ndarray, matrix: sparse.csr_array | np.ndarray) -> np.ndarray:
    """rows @ matrix for dense rows (r, n) and a sparse or dense (n, k) matrix: (r, k)."""
    from scipy import sparse

    if sparse.issparse(matrix):
        return np.asarray((matrix.T @ rows.T).T)
    return rows @ matrix


# --- bounds -------------------------------------------------------------------------------------


def folded_lower(mean: float, se: float, error: float, df: float) -> float:
    """Lower confidence bound on |mu| from an estimate mean ~ mu + se * t_df.

    The bound is the nu >= 0 at which P_nu(|estimate| >= |mean|) = error (test inversion of the
    folded t), so it is valid for every mu, including 0, and equals |mean| - t_{error} se, the
    one-sided bound, once |mean| is many standard errors from 0. 0 without a standard error.
    """
    from scipy import optimize, stats

    x = abs(mean)
    if not se > 0:  # no spread seen: no bound
        return 0.0

    def excess(nu: float) -> float:
        return float(stats.t.sf((x - nu) / se, df) + stats.t.cdf((-x - nu) / se, df) - error)

    if excess(0.0) >= 0.0:
        return 0.0
    return float(optimize.brentq(excess, 0.0, x, xtol=1e-12))


def gap_lower(values: np.ndarray, floor_variance: float, error: float) -> float:
    """Lower bound on |E values| from n i.i.d. values: the folded t bound with the sample
    variance, floored at `floor_variance` (the label noise of a calibrated model: a sample
    with no errors has a near-zero sample variance but not a near-zero true one)."""
    count = values.shape[-1]
    variance = max(float(values.var(ddof=1)), floor_variance)
    return folded_lower(float(values.mean()), math.sqrt(variance / count), error, count - 1)


def abs_sum_lower(
    point: np.ndarray, boot: np.ndarray, null: np.ndarray | None, error: float
) -> float:
    """Lower bound on sum_c |mu_c| from estimates X_c = point[c] of mu_c, at error `error`.

    `boot` (R, C) holds bootstrap deviations X*_c - X_c; `null` (R, C), if given, deviations
    under perfect calibration (consistency redraws). Two-step moment selection: with spread s_c
    (the larger of the two standard deviations) and z the Bonferroni normal quantile at
    b / (2 C), b = SELECTION_SHARE * error, m_c = max(|X_c| - z s_c, 0) is below |mu_c| for all
    cells at once with probability 1 - b. The error of the plug-in, sum_c (|mu_c + e_c| - |mu_c|),
    is in each cell f(|mu_c|, sign(mu_c) e_c) with f(m, e) = |m + e| - m, which decreases in m;
    so replacing |mu_c| by m_c gives a critical value that is large enough. A cell with m_c = 0
    (sign unknown) is charged max(|boot|, |null|), a cell with a known sign its aligned noise.
    """
    from scipy import stats

    if point.size == 0:
        return 0.0
    spread = boot.std(axis=0)
    if null is not None:
        spread = np.maximum(spread, null.std(axis=0))
    cells = max(int(np.count_nonzero((spread > 0) | (point != 0))), 1)
    selection = SELECTION_SHARE * error
    z = stats.norm.isf(selection / (2 * cells))
    margin = np.maximum(np.abs(point) - z * spread, 0.0)
    aligned = boot * np.where(point < 0, -1.0, 1.0)
    terms = np.maximum(aligned, -aligned - 2 * margin)
    if null is not None:
        unsigned = margin == 0
        terms[:, unsigned] = np.maximum(np.abs(boot[:, unsigned]), np.abs(null[:, unsigned]))
    critical = np.quantile(terms.sum(axis=1), 1.0 - (error - selection))
    return max(float(np.abs(point).sum() - critical), 0.0)


def bootstrap_upper(value: float, replicates: np.ndarray, error: float) -> float:
    """Upper bound on E[estimate] (hence on a population value the estimate overestimates on
    average): the larger of the basic bound value - (q_error - mean) and the percentile bound
    q_{1 - error} of the bootstrap replicates."""
    basic = value - (np.quantile(replicates, error) - replicates.mean())
    return float(max(basic, np.quantile(replicates, 1.0 - error)))


def max_t_lower(
    values: np.ndarray, floor_variance: np.ndarray, counts_means: np.ndarray, error: float
) -> float:
    """Lower bound on max_j |E values[:, j]| over J statistics at once (max-|t| bootstrap).

    `counts_means` (R, J) are the statistics' bootstrap means. The critical value is the
    1 - error quantile of max_j |mean*_j - mean_j| / se_j, so all J bounds hold together.
    """
    count = values.shape[0]
    means = values.mean(axis=0)
    se = np.sqrt(np.maximum(values.var(axis=0, ddof=1), floor_variance) / count)
    usable = se > 0  # a statistic that never varies tells nothing
    if not usable.any():
        return 0.0
    means, se = means[usable], se[usable]
    deviation = np.abs(counts_means[:, usable] - means) / se
    critical = np.quantile(deviation.max(axis=1), 1.0 - error)
    return float(np.max(np.maximum(np.abs(means) - critical * se, 0.0)))


# --- means (brier, nll) -------------------------------------------------------------------------


def mean_interval(values: np.ndarray, confidence_level: float, floor_variance: float) -> Interval:
    """Student t interval for the mean of i.i.d. per-example values, with the variance floored
    at `floor_variance`: the losses are skewed to the right (rare errors cost much), so a small
    sample that happens to hold no error has a far too small sample variance."""
    from scipy import stats

    count = values.shape[-1]
    variance = max(float(values.var(ddof=1)), floor_variance)
    half = float(stats.t.isf((1.0 - confidence_level) / 2, count - 1)) * math.sqrt(variance / count)
    mean = float(values.mean())
    return mean - half, mean + half


def implied_variance(probabilities: np.ndarray, losses: np.ndarray) -> float:
    """Mean over examples of the variance of the loss when the label is drawn from the model's
    own probabilities: `losses` (n, K) is the loss each label would give."""
    # A label of probability 0 adds nothing (its loss may be inf).
    finite = np.where(probabilities > 0, losses, 0.0)
    expected = (probabilities * finite).sum(axis=1)
    return float(np.mean((probabilities * finite**2).sum(axis=1) - expected**2))
