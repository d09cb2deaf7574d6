"""Intervals on the population binned calibration errors: ece, ace, mce, classwise, L2.

Each is the pair of one-sided bounds built in `calibration_bounds` (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustness_checks.metrics.calibration import equal_mass_bins, equal_width_bins
from robustness_checks.metrics.calibration_bounds import (
    ELEMENTS_PER_BATCH,
    GLOBAL_SHARE,
    Interval,
    abs_sum_lower,
    bootstrap_upper,
    cell_matrix,
    gap_lower,
    max_t_lower,
    redraw,
    replicate,
    times,
)
from robustness_checks.metrics.intervals import binomial_bounds

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


def equal_mass_sums(indices: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """Per-bin sums of `values` over index resamples (rows of `indices`) of examples SORTED by
    (confidence, correctness), with the equal-mass bins recomputed on each resample: sorting a
    row's indices sorts the resample, and sorted position p of n goes to bin
    floor(p * bins / n). Returns (rows, bins)."""
    rows, count = indices.shape
    ordered = values[np.sort(indices, axis=1)]
    cumulative = np.zeros((rows, count + 1))
    np.cumsum(ordered, axis=1, out=cumulative[:, 1:])
    edges = -(-np.arange(bins + 1) * count // bins)  # ceil(j n / bins): first position of bin j
    return np.diff(cumulative[:, edges], axis=1)


def resample_indices(
    rng: np.random.Generator,
    count: int,
    resamples: int,
    statistic: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """statistic(indices) over index-bootstrap resamples (the draws of `bootstrap_counts`),
    computed in batches of rows."""
    batch = max(1, min(resamples, ELEMENTS_PER_BATCH // max(count, 1)))
    parts = [
        statistic(
            rng.integers(0, count, size=(min(batch, resamples - first), count), dtype=np.int32)
        )
        for first in range(0, resamples, batch)
    ]
    return np.concatenate(parts)


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
    if equal_mass:  # sorted, so that sorting a resample's indices sorts the resample
        order = np.lexsort((correct, confidence))
        confidence, correct = confidence[order], correct[order]
    residual = correct - confidence
    membership = cell_matrix(binned_bins(confidence, correct, bins, equal_mass), bins).toarray()
    point = residual @ membership / count

    if equal_mass:
        boot = resample_indices(
            rng, count, resamples, lambda indices: equal_mass_sums(indices, residual, bins) / count
        )
    else:
        weights = membership * residual[:, None]
        boot = replicate(rng, count, resamples, lambda counts: counts @ weights / count)
    boot -= point
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
