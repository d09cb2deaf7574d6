"""Separation metrics of a score between negatives and positives, with bootstrap intervals."""

from __future__ import annotations

from typing import Any

import numpy as np

from robustness_checks.checks.common.scored import thinned
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics import ranking
from robustness_checks.metrics.intervals import bootstrap_interval

BATCH_METRICS = {
    "auroc": ranking.batch_auroc,
    "aupr": ranking.batch_aupr,
    "aupr_error": ranking.batch_aupr,
    "fpr95": lambda scores, positive: ranking.batch_fpr_at_tpr(scores, positive, 0.95),
}


def separation(
    context: CheckContext, metric: str, negative: np.ndarray, positive: np.ndarray, resamples: int
) -> tuple[float, tuple[float, float] | None, dict[str, Any]]:
    """(value, interval, details) of `metric` with positives scoring higher when separated."""
    scores = np.concatenate([negative, positive])
    labels = np.concatenate([np.zeros(len(negative)), np.ones(len(positive))])
    function = BATCH_METRICS[metric]
    value = float(function(scores, labels.astype(bool)))
    ci = bootstrap_interval(
        lambda s, y: _nan_safe(function(s, y.astype(bool))),
        [scores, labels],
        confidence=context.confidence,
        rng=context.numpy_rng("bootstrap"),
        resamples=resamples,
    )
    fpr, tpr = ranking.roc_curve(negative, positive)
    curve = thinned(fpr, tpr)
    details = {
        "auroc": ranking.auroc(negative, positive),
        "aupr": ranking.aupr(negative, positive),
        "fpr95": ranking.fpr_at_tpr(negative, positive, 0.95),
        "roc": {"fpr": curve["x"], "tpr": curve["y"]},
        "negatives": len(negative),
        "positives": len(positive),
    }
    return value, ci, details


def _nan_safe(values: np.ndarray) -> np.ndarray:
    """Resamples without a positive or a negative have no value; they take the median's place."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        values = np.where(np.isnan(values), np.nanmedian(values), values)
    return values
