"""Confidence intervals for calibration errors that bound the POPULATION value of each metric.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, sparse, stats

from robustness_checks.metrics.calibration import equal_mass_bins, equal_width_bins
from robustness_checks.metrics.calibration_bias import smooth_ece_operator
from robustness_checks.metrics.intervals import binomial_bounds

Interval = tuple[float, float]

GLOBAL_SHARE = 0.8  # share of a lower bound's error spent on the global (or threshold) gaps
SELECTION_SHARE = 0.25  # share of the cell bound's error spent on knowing the cells' signs
_ELEMENTS_PER_BATCH = 4_000_000


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
    batch = max(1, min(resamples, _ELEMENTS_PER_BATCH // max(count, 1)))
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
    batch = max(1, min(resamples, _ELEMENTS_PER_BATCH // max(count, 1)))
    parts = []
    for first in range(0, resamples, batch):
        drawn = rng.random((min(batch, resamples - first), count)) < probability
        parts.append(statistic(drawn - probability))
    return np.concatenate(parts)


def cell_matrix(cells: np.ndarray, size: int, values: np.ndarray | None = None) -> sparse.csr_array:
    """(n, size) sparse matrix with `values` (default 1) at (example, its cell); `cells` may hold
    several cells per example (shape (n, k))."""
    cells = np.asarray(cells).reshape(len(cells), -1)
    rows = np.repeat(np.arange(len(cells)), cells.shape[1])
    data = np.ones(cells.size) if values is None else np.asarray(values, float).reshape(-1)
    return sparse.csr_array((data, (rows, cells.reshape(-1))), shape=(len(cells), size))


def times(rows: np.ndarray, matrix: sparse.csr_array | np.ndarray) -> np.ndarray:
    """rows @ matrix for dense rows (r, n) and a sparse or dense (n, k) matrix: (r, k)."""
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
    se = np.where(se > 0, se, np.inf)
    deviation = np.abs(counts_means - means) / se
    critical = np.quantile(deviation.max(axis=1), 1.0 - error)
    return float(np.max(np.maximum(np.abs(means) - critical * se, 0.0), initial=0.0))


# --- top-label binned errors (ece, ace) ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BinnedInterval:
    """Bounds on a binned top-label calibration error theta = sum_b |E[(correct - confidence)
    1{b}]|, kept with their resamples so that a bound at any level can be read off.

    `low`/`high` are the two-sided interval at `confidence_level` (one-sided bounds at
    (1 + level) / 2); `lower_bound(level)`/`upper_bound(level)` are one-sided at `level`
    (default `confidence_level`). `null_mean` is the plug-in's mean under perfect calibration
    (consistency redraws) and `statistic` = max(plugin - null_mean, 0) the debiased estimate.
    """

    plugin: float
    null_mean: float
    confidence_level: float
    residual: np.ndarray = field(repr=False)  # correct - confidence per example
    floor: float = field(repr=False)  # label variance of a calibrated model
    point: np.ndarray = field(repr=False)  # per-bin mean residual contributions
    boot: np.ndarray = field(repr=False)  # (R, bins) bootstrap deviations
    null: np.ndarray = field(repr=False)  # (R, bins) deviations under perfect calibration

    @property
    def statistic(self) -> float:
        """The debiased estimate max(plugin - null_mean, 0)."""
        return max(self.plugin - self.null_mean, 0.0)

    @property
    def low(self) -> float:
        """The lower end of the two-sided interval at `confidence_level`."""
        return self.lower_bound((1 + self.confidence_level) / 2)

    @property
    def high(self) -> float:
        """The upper end of the two-sided interval at `confidence_level`."""
        return self.upper_bound((1 + self.confidence_level) / 2)

    def lower_bound(self, level: float | None = None) -> float:
        """theta >= this with probability at least about `level`: the larger of the global
        gap at error GLOBAL_SHARE * (1 - level) and the cell bound at the rest."""
        error = 1.0 - (self.confidence_level if level is None else level)
        return max(
            gap_lower(self.residual, self.floor, GLOBAL_SHARE * error),
            abs_sum_lower(self.point, self.boot, self.null, (1 - GLOBAL_SHARE) * error),
        )

    def upper_bound(self, level: float | None = None) -> float:
        """theta <= this with probability at least about `level` (a bound on E[plug-in])."""
        error = 1.0 - (self.confidence_level if level is None else level)
        replicates = np.abs(self.boot + self.point).sum(axis=1)
        return min(bootstrap_upper(self.plugin, replicates, error), 1.0)


def binned_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int, equal_mass: bool
) -> np.ndarray:
    """The bin of each example: equal-width (lo, hi] or equal-mass."""
    if equal_mass:
        return equal_mass_bins(confidence, correct, bins)
    return equal_width_bins(confidence, bins)


def equal_mass_sums(counts: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """Per-bin sums of `values` over resamples given as counts of examples SORTED by
    (confidence, correctness), with the equal-mass bins recomputed on each resample: the
    example at sorted position p of n goes to bin floor(p * bins / n), and the copies of one
    example take consecutive positions. Returns (rows, bins)."""
    rows, count = counts.shape
    ends = np.cumsum(counts, axis=1)  # one past the last position of each example's copies
    sums = np.cumsum(counts * values, axis=1)
    edges = -(-np.arange(bins + 1) * count // bins)  # ceil(j n / bins): first position of bin j
    offsets = np.arange(rows)[:, None] * (count + 1.0)
    found = np.searchsorted((ends + offsets).ravel(), (edges + offsets).ravel(), side="right")
    before = found.reshape(rows, bins + 1) - np.arange(rows)[:, None] * count  # examples done
    previous = np.clip(before - 1, 0, count - 1)
    done_ends = np.where(before > 0, np.take_along_axis(ends, previous, 1), 0.0)
    done_sums = np.where(before > 0, np.take_along_axis(sums, previous, 1), 0.0)
    partial = values[np.clip(before, 0, count - 1)] * (edges - done_ends)
    cumulative = done_sums + np.where(before < count, partial, 0.0)
    return np.diff(cumulative, axis=1)


def binned_interval(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    bins: int,
    equal_mass: bool,
    confidence_level: float,
    rng: np.random.Generator,
    resamples: int,
) -> BinnedInterval:
    """Bounds on theta = sum_b |E[(correct - confidence) 1{b}]| (ECE for equal-width bins; for
    equal-mass bins the bins are the population's confidence quantiles). Needs two examples.
    For equal-mass bins the examples are resampled in their sorted order (by confidence, then
    correctness): resample r is examples_sorted[rng.integers(0, n, n)]."""
    count = confidence.shape[-1]
    if count < 2 or resamples < 2:
        raise ValueError("needs at least 2 examples and 2 resamples")
    if equal_mass:  # sorted, so that each resample's equal-mass bins follow from cumulative sums
        order = np.lexsort((correct, confidence))
        confidence, correct = confidence[order], correct[order]
    residual = correct - confidence
    membership = cell_matrix(binned_bins(confidence, correct, bins, equal_mass), bins).toarray()
    point = residual @ membership / count

    if equal_mass:

        def cell_sums(counts: np.ndarray) -> np.ndarray:
            return equal_mass_sums(counts, residual, bins) / count
    else:

        def cell_sums(counts: np.ndarray) -> np.ndarray:
            return counts @ (membership * residual[:, None]) / count

    boot = replicate(rng, count, resamples, cell_sums) - point
    null = redraw(rng, confidence, resamples, lambda dev: dev @ membership / count)
    return BinnedInterval(
        plugin=float(np.abs(point).sum()),
        null_mean=float(np.abs(null).sum(axis=1).mean()),
        confidence_level=confidence_level,
        residual=residual,
        floor=float(np.mean(confidence * (1 - confidence))),
        point=point,
        boot=boot,
        null=null,
    )


# --- maximum calibration error ------------------------------------------------------------------


def max_gap_interval(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    bins: int,
    classes: int,
    confidence_level: float,
) -> Interval:
    """Bounds on MCE = max |E[correct - confidence | bin b]| over bins of positive probability.

    Per non-empty bin, an interval for the gap: Clopper-Pearson for the accuracy (the bin's
    examples are i.i.d. given the bin) and Hoeffding for the mean confidence (range = bin
    width), with 90% / 10% of the bin's error. The lower bound is the larger of the global gap
    (MCE >= ECE >= |E[correct - confidence]|) at error e / 2 and the largest per-bin lower
    bound of |gap|, Bonferroni over the m non-empty bins (error e / (2 m), both tails); the upper
    bound needs only the bin where the maximum is attained to be covered (error e, both tails).
    A possible bin (one that meets [1 / classes, 1]) with no example can hold any gap up to
    max(hi, 1 - lo), so it puts the upper bound there.
    """
    error = (1.0 - confidence_level) / 2
    ids = equal_width_bins(confidence, bins)
    counts = np.bincount(ids, minlength=bins)
    hits = np.bincount(ids, weights=correct, minlength=bins)
    mean_conf = np.bincount(ids, weights=confidence, minlength=bins) / np.maximum(counts, 1)
    filled = counts > 0
    width = 1.0 / bins

    def gap_bounds(tail: float) -> tuple[np.ndarray, np.ndarray]:
        acc_low, acc_high = binomial_bounds(hits, counts, 0.9 * tail)
        slack = width * np.sqrt(np.log(1 / (0.1 * tail)) / (2 * np.maximum(counts, 1)))
        return acc_low - (mean_conf + slack), acc_high - (mean_conf - slack)

    low_each, high_each = gap_bounds(error / (4 * max(int(filled.sum()), 1)))
    per_bin = np.max(np.where(filled, np.maximum(low_each, -high_each), 0.0), initial=0.0)
    global_gap = gap_lower(
        correct - confidence, float(np.mean(confidence * (1 - confidence))), error / 2
    )
    low = max(per_bin, global_gap)
    low_any, high_any = gap_bounds(error / 2)
    high = np.max(np.where(filled, np.maximum(np.abs(low_any), np.abs(high_any)), 0.0))
    edges = np.linspace(0.0, 1.0, bins + 1)
    possible = ~filled & (edges[1:] >= 1.0 / classes)
    if possible.any():
        high = max(high, float(np.max(np.maximum(edges[1:], 1 - edges[:-1])[possible])))
    return float(np.clip(low, 0, 1)), float(np.clip(high, 0, 1))


# --- classwise ECE ------------------------------------------------------------------------------


def classwise_null(probabilities: np.ndarray, cells: np.ndarray, size: int) -> np.ndarray:
    """Standard deviation of each cell's sum of 1{y = k} - p_k when labels are drawn from the
    model's own probabilities; `cells` (n, K) is the cell of each example's class-k
    probability."""
    variance = probabilities * (1 - probabilities)
    return np.sqrt(np.bincount(cells.ravel(), weights=variance.ravel(), minlength=size))


def classwise_interval(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    bins: int,
    confidence_level: float,
    rng: np.random.Generator,
    resamples: int,
) -> Interval:
    """Bounds on classwise ECE = (1/K) sum_k sum_b |E[(1{y = k} - p_k) 1{p_k in b}]|.

    Upper: the bootstrap bound on the plug-in's mean. Lower: the larger of (a) the threshold
    gaps: for each inner bin edge e, (2/K) |E[sum_k (1{y = k} - p_k) 1{p_k <= e}]| is at most
    the classwise ECE (the residuals of all classes sum to 0 per example, so the cells below
    and above the edge have opposite sums), all edges bounded together by a max-|t| bootstrap;
    (b) moment selection over the K * bins cells (`abs_sum_lower`), with a normal null of each
    cell's variance when labels are drawn from the model's own probabilities.
    """
    count, classes = probabilities.shape
    error = (1.0 - confidence_level) / 2
    scale = 1.0 / (classes * count)
    ids = equal_width_bins(probabilities, bins)
    residual = (labels[:, None] == np.arange(classes)) - probabilities
    cells = ids + np.arange(classes) * bins
    size = classes * bins
    weights = cell_matrix(cells, size, residual * scale)
    edges = np.arange(1, bins)
    thresholds = np.stack([(residual * (ids < j)).sum(axis=1) for j in edges], axis=1)
    below = np.stack([(probabilities * (ids < j)).sum(axis=1) for j in edges], axis=1)
    point = np.asarray(weights.sum(axis=0))
    sums = replicate(
        rng,
        count,
        resamples,
        lambda counts: np.concatenate([times(counts, weights), counts @ thresholds / count], 1),
    )
    boot = sums[:, :size] - point
    # Calibrated null, normal per cell (cells of one example are nearly independent).
    null = rng.standard_normal((resamples, size)) * classwise_null(probabilities, cells, size)
    null *= scale
    plugin = float(np.abs(point).sum())
    high = bootstrap_upper(plugin, np.abs(sums[:, :size]).sum(axis=1), error)
    floor = np.mean(below * (1 - below), axis=0)
    threshold_bound = max_t_lower(thresholds, floor, sums[:, size:], GLOBAL_SHARE * error)
    low = max(
        2.0 / classes * threshold_bound,
        abs_sum_lower(point, boot, null, (1 - GLOBAL_SHARE) * error),
    )
    return low, high


# --- debiased L2 calibration error (ece_debiased) -----------------------------------------------


def l2_interval(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    bins: int,
    confidence_level: float,
    rng: np.random.Generator,
    resamples: int,
) -> Interval:
    """Bounds on the L2 binned error sqrt(sum_b P(b) gap_b^2) that `ece_debiased` estimates.

    Upper: the bootstrap bound on the mean of the plug-in sqrt(sum_b (n_b / n)(a_b - c_b)^2),
    which overestimates on average. Lower: the larger of the global gap (L2 >= L1 >= |E[correct
    - confidence]|) and sqrt(D - q), D Kumar et al.'s debiased squared estimate (before clipping)
    and q the 1 - e quantile of its bootstrap replicates' deviations from their mean.
    """
    count = confidence.shape[-1]
    error = (1.0 - confidence_level) / 2
    membership = cell_matrix(equal_width_bins(confidence, bins), bins).toarray()
    columns = np.concatenate(
        [membership, membership * correct[:, None], membership * confidence[:, None]], axis=1
    )
    tally, hits, conf = np.split(replicate(rng, count, resamples, lambda c: c @ columns), 3, 1)
    point = np.split(columns.sum(axis=0), 3)
    plugin = float(_l2_plugin(*point, count))
    high = bootstrap_upper(plugin, _l2_plugin(tally, hits, conf, count), error)
    squared = _debiased_square(tally, hits, conf, count)
    critical = np.quantile(squared - squared.mean(), 1.0 - (1 - GLOBAL_SHARE) * error)
    global_gap = gap_lower(
        correct - confidence, float(np.mean(confidence * (1 - confidence))), GLOBAL_SHARE * error
    )
    low = max(global_gap, math.sqrt(max(float(_debiased_square(*point, count)) - critical, 0.0)))
    return low, high


def _l2_plugin(tally: np.ndarray, hits: np.ndarray, conf: np.ndarray, count: int) -> np.ndarray:
    """sqrt(sum_b (n_b / n)(a_b - c_b)^2) from per-bin counts and sums (last axis: bins)."""
    return np.sqrt(((hits - conf) ** 2 / np.maximum(tally, 1)).sum(axis=-1) / count)


def _debiased_square(
    tally: np.ndarray, hits: np.ndarray, conf: np.ndarray, count: int
) -> np.ndarray:
    """Kumar et al.'s debiased squared L2 error before clipping at 0 (last axis: bins)."""
    safe = np.maximum(tally, 1)
    accuracy = hits / safe
    variance = accuracy * (1 - accuracy) / np.maximum(tally - 1, 1)
    terms = np.where(tally >= 2, (accuracy - conf / safe) ** 2 - variance, 0.0)
    return (tally * terms).sum(axis=-1) / count


# --- smooth ECE ---------------------------------------------------------------------------------


SMOOTH_NODES = 257  # confidences are spread linearly onto this many nodes in [0, 1]
SMOOTH_MESH = 128  # at most this many of relplot's mesh points are kept


def smooth_interval(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    value: float,
    confidence_level: float,
    rng: np.random.Generator,
    resamples: int,
) -> Interval:
    """Bounds on the population smooth ECE, the fixed point sigma* = smECE_sigma*(D).

    smECE_sigma(D) decreases in sigma, so sigma* <= s exactly when smECE_s(D) <= s. With U(s)
    and L(s) bounds on smECE_s(D) at a fixed bandwidth s, the interval is [the largest s with
    L(s) >= s, the smallest s with U(s) <= s]. At a fixed bandwidth smECE_s is a ratio of a sum
    over mesh points of |kernel-smoothed residual| and a sum of the smoothed density, linear in
    the examples before the absolute value (`smooth_ece_operator`, relplot's discretisation,
    with confidences spread onto SMOOTH_NODES nodes and SMOOTH_MESH mesh points kept). U is the
    bootstrap bound on the plug-in's mean; L the larger of the density-weighted global gap
    sum_t (smoothed residual) / sum_t (smoothed density), a weighted mean, and moment selection
    over the mesh points. `value` (the sample's smooth ECE) starts the search.
    """
    count = confidence.shape[-1]
    error = (1.0 - confidence_level) / 2
    left, weights = _spread(confidence, SMOOTH_NODES)
    active, cells = np.unique(left, return_inverse=True)  # the nodes that hold examples
    spread = cell_matrix(cells.reshape(left.shape), active.size, weights)
    positions = active / (SMOOTH_NODES - 1)
    residual = confidence - correct
    with_residual = spread * residual[:, None]
    # float32 for the large products; the sums are of at most a few thousand terms.
    boot = replicate(
        rng,
        count,
        resamples,
        lambda counts: np.concatenate([times(counts, with_residual), times(counts, spread)], 1),
    ).astype(np.float32)
    boot_residual, boot_mass = boot[:, : active.size], boot[:, active.size :]
    null_residual = redraw(rng, confidence, resamples, lambda dev: -times(dev, spread))
    null_residual = null_residual.astype(np.float32)
    point_residual = with_residual.sum(axis=0)
    point_mass = spread.sum(axis=0)
    floor = float(np.mean(confidence * (1 - confidence)))
    found: dict[float, dict[str, Any]] = {}

    def at(sigma: float) -> dict[str, Any]:
        """The operator, mesh values and bootstrap replicates at bandwidth sigma."""
        if sigma not in found:
            operator = smooth_ece_operator(sigma, positions, SMOOTH_MESH)
            mass = operator.sum(axis=1)
            density = float(point_mass @ mass)
            single = operator.astype(np.float32)
            found[sigma] = {
                "single": single,
                "mass": mass,
                "density": density,
                "mesh": point_residual @ operator / density,
                "boot": (boot_residual @ single) / (boot_mass @ mass)[:, None],
            }
        return found[sigma]

    def upper(sigma: float) -> float:
        here = at(sigma)
        plugin = float(np.abs(here["mesh"]).sum())
        return bootstrap_upper(plugin, np.abs(here["boot"]).sum(axis=1), error)

    def lower(sigma: float) -> float:
        here = at(sigma)
        weight = spread @ here["mass"] * (count / here["density"])
        mesh = here["mesh"]
        null = null_residual @ here["single"] / here["density"]
        return max(
            gap_lower(residual * weight, floor * float(np.mean(weight**2)), GLOBAL_SHARE * error),
            abs_sum_lower(mesh, here["boot"] - mesh, null, (1 - GLOBAL_SHARE) * error),
        )

    return _fixed_point(lower, value, -1), _fixed_point(upper, value, 1)


def _spread(x: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear spreading of x in [0, 1] onto `nodes` equally spaced nodes: indices and weights,
    (n, 2) each."""
    position = x * (nodes - 1)
    left = np.clip(position.astype(np.int64), 0, nodes - 2)
    frac = position - left
    return np.stack([left, left + 1], axis=1), np.stack([1 - frac, frac], axis=1)


def _fixed_point(bound: Callable[[float], float], start: float, side: int) -> float:
    """The s in [0, 1] with bound(s) = s, for a bound that decreases in s, rounded outwards:
    side -1 (a lower end) returns a point at or below it, side +1 (an upper end) one at or
    above it. f(s) = bound(s) - s falls with slope <= -1, so the root is within |f(s)| of s:
    the search (first s <- bound(s), then regula falsi with the Illinois rule once the root is
    bracketed) stops when |f(s)| <= 3e-4 and returns s + side |f(s)|, clipped to [0, 1]."""
    tolerance = 3e-4
    bracket: dict[bool, tuple[float, float]] = {}  # sign of f -> (s, f(s)) nearest the root
    s = min(max(start, 0.0), 1.0)
    for _ in range(12):
        f = min(bound(s), 1.0) - s if s > 0 else tolerance
        if abs(f) <= tolerance:
            return float(np.clip(s + side * abs(f), 0.0, 1.0))
        bracket[f > 0] = (s, f)
        if len(bracket) < 2:
            s = min(max(s + f, 0.0), 1.0)
            continue
        (a, fa), (b, fb) = bracket[True], bracket[False]
        s = a - fa * (b - a) / (fb - fa)
        # Illinois: halve the value kept from the side that did not move, to avoid stalling.
        stale = not (f > 0)
        bracket[stale] = (bracket[stale][0], bracket[stale][1] / 2)
    ends = [point for point, _ in bracket.values()]
    return float(min(ends) if side < 0 else max(ends))


# --- means (brier, nll) -------------------------------------------------------------------------


def mean_interval(values: np.ndarray, confidence_level: float, floor_variance: float) -> Interval:
    """Student t interval for the mean of i.i.d. per-example values, with the variance floored
    at `floor_variance`: the losses are skewed to the right (rare errors cost much), so a small
    sample that happens to hold no error has a far too small sample variance."""
    count = values.shape[-1]
    variance = max(float(values.var(ddof=1)), floor_variance)
    half = float(stats.t.isf((1.0 - confidence_level) / 2, count - 1)) * math.sqrt(variance / count)
    mean = float(values.mean())
    return mean - half, mean + half


def implied_variance(probabilities: np.ndarray, losses: np.ndarray) -> float:
    """Mean over examples of the variance of the loss when the label is drawn from the model's
    own probabilities: `losses` (n, K) is the loss each label would give."""
    possible = probabilities > 0  # a label of probability 0 adds nothing (its loss may be inf)
    weighted = np.where(possible, probabilities * losses, 0.0)
    squared = np.where(possible, probabilities * losses**2, 0.0)
    return float(np.mean(squared.sum(axis=1) - weighted.sum(axis=1) ** 2))
