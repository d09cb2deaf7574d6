"""Separation metrics of a score between negatives and positives (AUROC, AUPR, FPR95), each with
an interval from one weighted bootstrap pass, and the details `ood` and `failure_prediction`
report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robustness_checks.checks.common.scored import MIN_PER_CLASS, estimate_details, thinned
from robustness_checks.errors import InsufficientData
from robustness_checks.metrics import ranking, ranking_intervals, ranking_resampled
from robustness_checks.metrics.intervals import (
    Estimate,
    bca_interval,
    binomial_bounds,
    hoeffding_interval,
    side_error,
)

METRICS = ("auroc", "aupr", "fpr95")
TPR = 0.95
# Average precision is skewed and biased upwards on small samples. On N(0, 1) against N(d, 1)
# scores at AP 0.9, BCa's lower bound was above the truth in 4.5% and 6.0% of 1000 seeds (two
# seed streams) with 20 of each class and in 8.5% of the validity harness's 200; 4.7% with 30,
# 3.2% with 200 (nominal 2.5%, promised 5%). Below 30 the conservative floor is used.
MIN_AUPR_PER_CLASS = 30


def measure_separation(
    negative: np.ndarray,
    positive: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
    stratified: bool,
    metrics: Sequence[str] = METRICS,
) -> dict[str, Estimate]:
    """AUROC, AUPR (average precision) and FPR95 (those in `metrics`), positives scoring higher
    when the score separates the classes, each with an interval.

    AUROC: the BCa bootstrap (each class resampled on its own when `stratified`, else all
    examples together) with at least MIN_PER_CLASS examples of each class, else Hoeffding's
    bound. AUPR: BCa with at least MIN_AUPR_PER_CLASS of each class, else a lower bound from
    FPR95's upper bound (`ranking_intervals.average_precision_floor`) up to 1. FPR95: exact
    (`ranking_intervals.fpr_at_tpr_interval`). A collapsed bootstrap (all resamples on one side
    of the value) also falls back. Raises InsufficientData when a class is empty.
    """
    negative = np.asarray(negative, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=np.float64).ravel()
    if not negative.size or not positive.size:
        raise InsufficientData(
            f"{negative.size} negatives and {positive.size} positives: the separation metrics "
            "need both"
        )
    item = ranking_resampled.separated(negative, positive)
    values = ranking_resampled.separation_values(item)
    smaller = min(negative.size, positive.size)
    minimum = {"auroc": MIN_PER_CLASS, "aupr": MIN_AUPR_PER_CLASS}
    boot = [name for name in minimum if name in metrics and smaller >= minimum[name]]
    drawn: dict[str, np.ndarray] = {}
    if boot and resamples > 0:
        drawn = ranking_resampled.resampled_separation(
            item, stratified=stratified, resamples=resamples, rng=rng, metrics=boot
        )
    jackknife = ranking_resampled.separation_jackknife(item) if drawn else {}
    found = {}
    for name in metrics:
        interval = None
        if name in drawn:
            pieces = jackknife[name]
            strata = pieces if stratified else (np.concatenate(pieces),)
            interval = bca_interval(values[name], drawn[name], strata, confidence)
        found[name] = (
            Estimate(values[name], interval, "BCa bootstrap")
            if interval is not None
            else FALLBACKS[name](values[name], negative, positive, stratified, confidence)
        )
    return found


def _auroc_fallback(
    value: float, negative: np.ndarray, positive: np.ndarray, stratified: bool, confidence: float
) -> Estimate:
    """Hoeffding's bound for a two-sample U-statistic."""
    smaller = min(negative.size, positive.size)
    return Estimate(value, hoeffding_interval(value, smaller, confidence), "Hoeffding")


def _fpr95(
    value: float, negative: np.ndarray, positive: np.ndarray, stratified: bool, confidence: float
) -> Estimate:
    """FPR95's exact interval."""
    interval = ranking_intervals.fpr_at_tpr_interval(negative, positive, TPR, confidence)
    return Estimate(value, interval, "exact: order statistics and Clopper-Pearson")


def _aupr_fallback(
    value: float, negative: np.ndarray, positive: np.ndarray, stratified: bool, confidence: float
) -> Estimate:
    """From a lower bound on FPR95's population value up to 1. With a random positive share
    (not stratified) the share gets a Clopper-Pearson lower bound too, each taking half the
    side's error."""
    count = negative.size + positive.size
    share, level = positive.size / count, confidence
    if not stratified:
        level = 1.0 - side_error(confidence)  # each of the two bounds: (1 - c) / 4
        share = float(binomial_bounds(positive.size, count, side_error(level))[0])
    _, fpr_high = ranking_intervals.fpr_at_tpr_interval(negative, positive, TPR, level)
    floor = ranking_intervals.average_precision_floor(share, fpr_high, TPR)
    return Estimate(value, (floor, 1.0), "conservative: from FPR95's upper bound")


FALLBACKS = {"auroc": _auroc_fallback, "aupr": _aupr_fallback, "fpr95": _fpr95}


def separation_details(
    estimates: dict[str, Estimate], negative: np.ndarray, positive: np.ndarray
) -> dict[str, Any]:
    """The metrics with their intervals, the ROC curve and the class sizes."""
    fpr, tpr = ranking.roc_curve(negative, positive)
    curve = thinned(fpr, tpr)
    return {
        **estimate_details(estimates),
        "roc": {"fpr": curve["x"], "tpr": curve["y"]},
        "negatives": len(negative),
        "positives": len(positive),
    }


def separation_warnings(
    estimates: dict[str, Estimate],
    negatives: int,
    positives: int,
    *,
    score: str,
    negative_name: str,
    positive_name: str,
) -> list[str]:
    """Doubts a user needs about a separation result: too few examples of a class for the
    metrics to mean much, and an AUROC clearly below 0.5 (the score ranks the classes the
    wrong way round, as an OOD score can for a shift that makes the model more confident)."""
    found = []
    fewest = min(negatives, positives)
    if fewest < MIN_PER_CLASS:
        name, count = (
            (positive_name, positives) if positives <= negatives else (negative_name, negatives)
        )
        shown = ", ".join(
            f"{metric} {_interval_text(estimate)}" for metric, estimate in estimates.items()
        )
        found.append(
            f"only {count} {name} (fewer than {MIN_PER_CLASS}): the separation metrics of "
            f"{score} rest on so few examples that they mean little ({shown}); use data with "
            f"more {name}"
        )
    auroc = estimates.get("auroc")
    if auroc is not None and _clearly_below_half(auroc):
        found.append(
            f"AUROC {auroc.value:.3g} is well below 0.5: {score} ranks the {positive_name} "
            f"below the {negative_name}, the opposite of what it is for: the model is more "
            f"confident on the {positive_name}. For this data the score runs the other way; "
            "check the data (labels, the shift) or use a different score"
        )
    return found


def _clearly_below_half(estimate: Estimate) -> bool:
    """Whether an AUROC is below 0.5 beyond its interval (or by 0.1 without one)."""
    interval = estimate.interval
    if interval is not None and all(map(np.isfinite, interval)):
        return bool(interval[1] < 0.5)
    return bool(estimate.value < 0.4)


def _interval_text(estimate: Estimate) -> str:
    interval = estimate.interval
    if interval is None:
        return f"{estimate.value:.3g}"
    return f"{estimate.value:.3g}, interval {interval[0]:.3g} to {interval[1]:.3g}"
