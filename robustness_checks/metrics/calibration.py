"""Calibration metrics: ECE, adaptive ECE, MCE, classwise ECE, Brier score, NLL.

Bin-edge rule: equal-width bins are (lo, hi] with a confidence of exactly 0 in the first bin, so a
confidence of 1.0 lands in the last bin. Every function accepts extra leading axes (independent
batches, as the bootstrap passes them) and reduces the last axis, which indexes examples.
"""

from __future__ import annotations

import numpy as np

CALIBRATION_METRICS = ("ece", "ace", "mce", "classwise_ece", "brier", "nll")


def equal_width_bins(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Index of the (lo, hi] bin of each confidence; 0 falls in the first bin."""
    interior = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.clip(np.searchsorted(interior, confidence, side="left"), 0, bins - 1)


def equal_mass_bins(confidence: np.ndarray, correct: np.ndarray, bins: int) -> np.ndarray:
    """Bin index per example for `bins` bins of (nearly) equal size.

    Examples are ordered by (confidence, correctness) so ties never depend on input order; the
    example at sorted position i of n goes to bin floor(i * bins / n).
    """
    count = confidence.shape[-1]
    order = np.lexsort((correct, confidence), axis=-1)
    sorted_ids = (np.arange(count) * bins) // count
    ids = np.empty_like(order)
    np.put_along_axis(ids, order, np.broadcast_to(sorted_ids, order.shape), axis=-1)
    return ids


def bin_sums(ids: np.ndarray, bins: int, *values: np.ndarray) -> list[np.ndarray]:
    """Per-bin counts and sums of each of `values`, shape (*leading, bins)."""
    leading = ids.shape[:-1]
    rows = int(np.prod(leading, dtype=np.int64))
    flat = (ids.reshape(rows, -1) + np.arange(rows)[:, None] * bins).ravel()
    size = rows * bins
    counts = np.bincount(flat, minlength=size).reshape(*leading, bins)
    sums = [
        np.bincount(
            flat,
            weights=np.broadcast_to(v, ids.shape).reshape(-1).astype(np.float64),
            minlength=size,
        ).reshape(*leading, bins)
        for v in values
    ]
    return [counts, *sums]


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> np.ndarray:
    """ECE (Guo et al. 2017): sum over bins of (count / n) * |accuracy - mean confidence|."""
    return _binned_error(equal_width_bins(confidence, bins), confidence, correct, bins)


def adaptive_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> np.ndarray:
    """ECE over equal-mass bins (adaptive ECE)."""
    return _binned_error(equal_mass_bins(confidence, correct, bins), confidence, correct, bins)


def maximum_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> np.ndarray:
    """MCE: the largest |accuracy - mean confidence| over non-empty equal-width bins."""
    ids = equal_width_bins(confidence, bins)
    counts, conf_sums, correct_sums = bin_sums(ids, bins, confidence, correct)
    gaps = np.abs(correct_sums - conf_sums) / np.maximum(counts, 1)
    return np.where(counts > 0, gaps, 0.0).max(axis=-1)


def classwise_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> np.ndarray:
    """Classwise ECE: the ECE of each class's marginal probability, averaged over classes.

    `probabilities` has classes on the second-to-last axis: shape (..., classes, n).
    """
    classes = probabilities.shape[-2]
    is_class = labels[..., None, :] == np.arange(classes)[:, None]
    return expected_calibration_error(probabilities, is_class, bins).mean(axis=-1)


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over examples of sum over classes of (p_k - [y = k])^2; shape (..., classes, n)."""
    classes = probabilities.shape[-2]
    one_hot = labels[..., None, :] == np.arange(classes)[:, None]
    return ((probabilities - one_hot) ** 2).sum(axis=-2).mean(axis=-1)


def negative_log_likelihood(log_probability_of_label: np.ndarray) -> np.ndarray:
    """Mean cross-entropy, from the log-probability each example gives its true label."""
    return -log_probability_of_label.mean(axis=-1)


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int, equal_mass: bool = False
) -> list[dict[str, float]]:
    """Reliability-diagram rows (lo, hi, count, confidence, accuracy) for the non-empty bins."""
    if equal_mass:
        ids = equal_mass_bins(confidence, correct, bins)
    else:
        ids = equal_width_bins(confidence, bins)
    counts, conf_sums, correct_sums = bin_sums(ids, bins, confidence, correct)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for b in np.flatnonzero(counts):
        members = confidence[ids == b]
        lo, hi = (members.min(), members.max()) if equal_mass else (edges[b], edges[b + 1])
        rows.append(
            {
                "lo": float(lo),
                "hi": float(hi),
                "count": int(counts[b]),
                "confidence": float(conf_sums[b] / counts[b]),
                "accuracy": float(correct_sums[b] / counts[b]),
            }
        )
    return rows


def _binned_error(
    ids: np.ndarray, confidence: np.ndarray, correct: np.ndarray, bins: int
) -> np.ndarray:
    _, conf_sums, correct_sums = bin_sums(ids, bins, confidence, correct)
    return np.abs(correct_sums - conf_sums).sum(axis=-1) / confidence.shape[-1]
