"""Ranking metrics: AUROC, AUPR, FPR at a TPR, risk-coverage curves, AURC, selective accuracy.

Detection scores are oriented so that HIGHER means more likely positive (OOD, or an error);
selective-prediction functions take an `uncertainty` where HIGHER means abstain first. Ties never
make a result depend on the order of the inputs: in AUROC a tied pair counts 1/2; on curves, in
AUPR and FPR-at-TPR tied scores form one threshold (accepted or rejected together); AURC and
selective accuracy take the mean over every order of the tied inputs where a coverage cuts a tie
group. The `batch_*` functions take `scores` and a boolean `positive` (or `uncertainty` and
`correct`) with examples on the last axis and any leading axes (bootstrap rows), and return one
float64 value per row (NaN where a row has no positive or no negative); the functions with the
plain names are their one-row forms on separate negative and positive scores.
"""

from __future__ import annotations

import math

import numpy as np


def _validate(*arrays: np.ndarray) -> None:
    for array in arrays:
        if np.isnan(array).any():
            raise ValueError("scores must not contain NaN")


def _labelled(scores_negative: np.ndarray, scores_positive: np.ndarray) -> tuple[np.ndarray, ...]:
    negative = np.asarray(scores_negative, dtype=np.float64).ravel()
    positive = np.asarray(scores_positive, dtype=np.float64).ravel()
    _validate(negative, positive)
    scores = np.concatenate([negative, positive])
    labels = np.concatenate([np.zeros(negative.size, bool), np.ones(positive.size, bool)])
    return scores, labels


def _group_ends(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Last-of-tie-group mask, and for each position the index of its group's last element."""
    count = sorted_values.shape[-1]
    is_end = np.ones(sorted_values.shape, dtype=bool)
    is_end[..., :-1] = sorted_values[..., 1:] != sorted_values[..., :-1]
    candidates = np.where(is_end, np.arange(count), count)
    end_index = np.flip(np.minimum.accumulate(np.flip(candidates, -1), axis=-1), -1)
    return is_end, end_index


def _group_starts(sorted_values: np.ndarray) -> np.ndarray:
    """For each position the index of its tie group's first element."""
    is_start = np.ones(sorted_values.shape, dtype=bool)
    is_start[..., 1:] = sorted_values[..., 1:] != sorted_values[..., :-1]
    candidates = np.where(is_start, np.arange(sorted_values.shape[-1]), 0)
    return np.maximum.accumulate(candidates, axis=-1)


def _descending_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative true and false positives down the scores, with the tie-group structure."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    hits = np.take_along_axis(np.asarray(positive, dtype=bool), order, axis=-1)
    true_positives = np.cumsum(hits, axis=-1)
    false_positives = np.arange(1, scores.shape[-1] + 1) - true_positives
    is_end, end_index = _group_ends(sorted_scores)
    return hits, true_positives, false_positives, is_end, end_index


def batch_auroc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """P(score of a positive > score of a negative) + P(tie) / 2 (Mann-Whitney U / (P N))."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    ranks = rankdata(scores, axis=-1)  # average ranks: each tie counts 1/2
    n_pos = positive.sum(axis=-1)
    n_neg = positive.shape[-1] - n_pos
    u = np.where(positive, ranks, 0.0).sum(axis=-1) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def batch_aupr(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Average precision: sum over thresholds of (recall increase) * precision, as scikit-learn.

    Every positive contributes the precision at the lowest score of its tie group.
    """
    hits, true_positives, _, _, end_index = _descending_counts(scores, positive)
    tp_end = np.take_along_axis(true_positives, end_index, axis=-1)
    precision = tp_end / (end_index + 1.0)
    n_pos = hits.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(hits, precision, 0.0).sum(axis=-1) / n_pos
    return np.where((n_pos > 0) & (n_pos < hits.shape[-1]), ap, np.nan)


def batch_fpr_at_tpr(scores: np.ndarray, positive: np.ndarray, tpr: float = 0.95) -> np.ndarray:
    """FPR at the highest threshold (a distinct score) whose TPR is at least `tpr`."""
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    hits, true_positives, false_positives, is_end, _ = _descending_counts(scores, positive)
    n_pos = hits.sum(axis=-1, keepdims=True)
    n_neg = hits.shape[-1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        reached = is_end & (true_positives / n_pos >= tpr)
        first = np.argmax(reached, axis=-1)[..., None]
        fpr = np.take_along_axis(false_positives / n_neg, first, axis=-1)[..., 0]
    return np.where((n_pos[..., 0] > 0) & (n_neg[..., 0] > 0), fpr, np.nan)


def auroc(scores_negative: np.ndarray, scores_positive: np.ndarray) -> float:
    """AUROC with positives scored higher; ties count 1/2. Equals sklearn's roc_auc_score."""
    return float(batch_auroc(*_labelled(scores_negative, scores_positive)))


def aupr(scores_negative: np.ndarray, scores_positive: np.ndarray) -> float:
    """Average precision, positives as the positive class; equals sklearn's
    average_precision_score (tied scores are one threshold)."""
    return float(batch_aupr(*_labelled(scores_negative, scores_positive)))


def fpr_at_tpr(
    scores_negative: np.ndarray, scores_positive: np.ndarray, tpr: float = 0.95
) -> float:
    """False-positive rate at the first threshold, going down the distinct scores, whose TPR
    reaches `tpr` (FPR95 for 0.95 with OOD as the positive class)."""
    return float(batch_fpr_at_tpr(*_labelled(scores_negative, scores_positive), tpr=tpr))


def roc_curve(
    scores_negative: np.ndarray, scores_positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at (0, 0) and then at every distinct score, from the highest down."""
    scores, labels = _labelled(scores_negative, scores_positive)
    hits, true_positives, false_positives, is_end, _ = _descending_counts(scores, labels)
    n_pos, n_neg = max(int(hits.sum()), 1), max(int((~hits).sum()), 1)
    fpr = np.concatenate([[0.0], false_positives[is_end] / n_neg])
    tpr = np.concatenate([[0.0], true_positives[is_end] / n_pos])
    return fpr, tpr


def _ascending_errors(
    uncertainty: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative errors up the uncertainty (most certain first), with the tie-group structure."""
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    _validate(uncertainty)
    order = np.argsort(uncertainty, axis=-1, kind="stable")
    wrong = ~np.take_along_axis(np.asarray(correct, dtype=bool), order, axis=-1)
    errors = np.cumsum(wrong, axis=-1)
    sorted_uncertainty = np.take_along_axis(uncertainty, order, axis=-1)
    is_end, end_index = _group_ends(sorted_uncertainty)
    return errors, is_end, end_index, _group_starts(sorted_uncertainty)


def risk_coverage_curve(
    uncertainty: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, selective risk) at every distinct uncertainty, in increasing coverage.

    Abstaining starts with the MOST uncertain inputs; each point accepts every input with an
    uncertainty at or below one distinct value, so tied inputs are accepted or rejected together.
    """
    errors, is_end, _, _ = _ascending_errors(uncertainty, correct)
    accepted = np.arange(1, errors.shape[-1] + 1)[is_end]
    return accepted / errors.shape[-1], errors[is_end] / accepted


def batch_aurc(uncertainty: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Area under the risk-coverage curve: the mean over k = 1..n of the selective risk of the k
    most certain inputs.

    A k that cuts a tie group takes the mean risk over every order of the tied inputs: with b
    inputs before the group and e errors among its g inputs, the errors accepted grow by e / g
    per input (so between two points of `risk_coverage_curve` the error COUNT is interpolated
    linearly). Equivalently, AURC is the mean over k of 1 - `batch_selective_accuracy` at
    coverage k / n; it is the expectation of the tie-free AURC over random tie-breaking.
    """
    errors, _, end_index, start_index = _ascending_errors(uncertainty, correct)
    count = errors.shape[-1]
    if count == 0:
        return np.full(errors.shape[:-1], np.nan)
    padded = np.concatenate([np.zeros_like(errors[..., :1]), errors], axis=-1)
    before = np.take_along_axis(padded, start_index, axis=-1)
    in_group = np.take_along_axis(errors, end_index, axis=-1) - before
    size = end_index - start_index + 1.0
    k = np.arange(1, count + 1)
    expected_errors = before + (k - start_index) * in_group / size
    return (expected_errors / k).mean(axis=-1)


def oracle_aurc(correct: np.ndarray) -> np.ndarray:
    """AURC of the optimal ranking, which accepts every correct input before any error."""
    correct = np.asarray(correct, dtype=bool)
    count = correct.shape[-1]
    if count == 0:
        return np.full(correct.shape[:-1], np.nan)
    k = np.arange(1, count + 1)
    right = correct.sum(axis=-1, keepdims=True)
    return (np.clip(k - right, 0, None) / k).mean(axis=-1)


def batch_e_aurc(uncertainty: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Excess AURC: AURC minus the AURC of the optimal ranking (0 for a perfect ranking)."""
    return batch_aurc(uncertainty, correct) - oracle_aurc(correct)


def accepted_count(count: int, coverage: float) -> int:
    """ceil(coverage * count), forgiving floating-point error in the product."""
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    return min(count, math.ceil(coverage * count - 1e-9))


def batch_selective_accuracy(
    uncertainty: np.ndarray, correct: np.ndarray, coverage: float
) -> np.ndarray:
    """Accuracy on the k = ceil(coverage * n) most certain inputs.

    When the cut falls inside a tie group, that group contributes in proportion: with b inputs
    strictly below the cut value and a tie group of g inputs holding c correct ones, the accuracy
    is (correct below + (k - b) * c / g) / k, the mean over every order of the tied inputs.
    """
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    _validate(uncertainty)
    correct = np.asarray(correct, dtype=bool)
    count = uncertainty.shape[-1]
    if count == 0:
        return np.full(uncertainty.shape[:-1], np.nan)
    k = accepted_count(count, coverage)
    cut = np.partition(uncertainty, k - 1, axis=-1)[..., k - 1 : k]
    below, tied = uncertainty < cut, uncertainty == cut
    tied_count = tied.sum(axis=-1)
    right = (correct & below).sum(axis=-1) + (k - below.sum(axis=-1)) * (
        (correct & tied).sum(axis=-1) / tied_count
    )
    return right / k


def aurc(uncertainty: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve (see `batch_aurc`); lower is better."""
    return float(batch_aurc(np.ravel(uncertainty), np.ravel(correct)))


def e_aurc(uncertainty: np.ndarray, correct: np.ndarray) -> float:
    """AURC minus the AURC of the optimal ranking (all errors rejected first)."""
    return float(batch_e_aurc(np.ravel(uncertainty), np.ravel(correct)))


def selective_accuracy(uncertainty: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy on the ceil(coverage * n) most certain inputs (see `batch_selective_accuracy`
    for the proportional rule on a tie group at the cut)."""
    return float(batch_selective_accuracy(np.ravel(uncertainty), np.ravel(correct), coverage))
