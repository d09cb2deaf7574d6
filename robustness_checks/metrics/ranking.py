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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from robustness_checks.metrics.intervals import (
    binomial_bounds,
    binomial_range,
    clopper_pearson,
    drawn_counts,
    quantile_ranks,
    resample_batches,
    side_error,
)


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


# --- one sorted order, many resamples ----------------------------------------------------------
#
# A bootstrap resample repeats some examples and drops others. Its sorted order is the original
# sorted order with each example repeated as often as it was drawn, and its tie groups are the
# original ones (copies of an example tie with each other). So every resample's metrics follow
# from per-example draw counts laid out in the original sorted order (cumulative counts at the
# ends of tie groups), with no sort per resample. Rows of counts are resamples; a row of ones is
# the sample itself. Resamples are drawn over these sorted slots, so neither the values nor the
# intervals depend on the order of the inputs.


@dataclass(frozen=True)
class Separated:
    """Negatives, then positives, each sorted by score descending, and where each positive
    meets the negatives (tied scores count as one threshold)."""

    slot: np.ndarray  # the sorted slot of each input of [negatives, positives]
    above: np.ndarray  # per sorted positive: the negatives scoring strictly higher
    reach: np.ndarray  # per sorted positive: the negatives scoring at least as high
    through: np.ndarray  # per sorted positive: the index of the last positive tied with it
    negatives: int
    positives: int

    @property
    def cross_ties(self) -> bool:
        return bool(np.any(self.above != self.reach))


def separated(scores_negative: np.ndarray, scores_positive: np.ndarray) -> Separated:
    """Sort the two classes once by score descending and locate each positive's threshold."""
    negative = np.asarray(scores_negative, dtype=np.float64).ravel()
    positive = np.asarray(scores_positive, dtype=np.float64).ravel()
    _validate(negative, positive)
    negative_order = np.argsort(-negative, kind="stable")
    positive_order = np.argsort(-positive, kind="stable")
    slot = np.empty(negative.size + positive.size, dtype=np.int64)
    slot[negative_order] = np.arange(negative.size)
    slot[negative.size + positive_order] = negative.size + np.arange(positive.size)
    ascending_negative, ascending_positive = np.sort(negative), np.sort(positive)
    top = positive[positive_order]
    above = negative.size - np.searchsorted(ascending_negative, top, side="right")
    reach = negative.size - np.searchsorted(ascending_negative, top, side="left")
    through = positive.size - np.searchsorted(ascending_positive, top, side="left") - 1
    return Separated(slot, above, reach, through, negative.size, positive.size)


def _cumulative(counts: np.ndarray) -> np.ndarray:
    """Cumulative counts along the last axis with a leading zero column."""
    out = np.zeros((*counts.shape[:-1], counts.shape[-1] + 1), dtype=np.int64)
    np.cumsum(counts, axis=-1, out=out[..., 1:])
    return out


def separation_from_counts(
    item: Separated,
    negative_counts: np.ndarray,
    positive_counts: np.ndarray,
    metrics: Sequence[str] = ("auroc", "aupr", "fpr95"),
) -> dict[str, np.ndarray]:
    """AUROC, AUPR (average precision) and FPR95 per row of draw counts of the sorted negatives
    and positives; NaN where a row lacks a class. Equal to `batch_auroc`, `batch_aupr` and
    `batch_fpr_at_tpr` of the resampled arrays."""
    beaten = _cumulative(negative_counts)  # negatives ranked above each threshold
    found_positives = np.cumsum(positive_counts, axis=-1)
    negatives = beaten[..., -1]
    positives = found_positives[..., -1]
    false_positives = np.take(beaten, item.reach, axis=-1)
    if item.through.size and np.any(item.through != np.arange(item.positives)):
        found_positives = np.take(found_positives, item.through, axis=-1)
    found: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if "auroc" in metrics:
            # Each positive loses to the negatives above it and to half of those tied with it.
            lost = np.einsum("...i,...i->...", positive_counts, false_positives)
            if item.cross_ties:
                lost = 0.5 * (
                    lost
                    + np.einsum(
                        "...i,...i->...", positive_counts, np.take(beaten, item.above, axis=-1)
                    )
                )
            pairs = positives * negatives.astype(np.float64)
            found["auroc"] = (pairs - lost) / pairs
        if "aupr" in metrics:
            drawn = found_positives + false_positives
            precision = np.divide(
                found_positives, drawn, where=drawn > 0, out=np.zeros(drawn.shape)
            )
            found["aupr"] = np.einsum("...i,...i->...", positive_counts, precision) / positives
        if "fpr95" in metrics:
            reached = found_positives / positives[..., None] >= 0.95
            first = np.argmax(reached, axis=-1)[..., None]
            chosen = np.take_along_axis(false_positives, first, axis=-1)[..., 0]
            found["fpr95"] = chosen / negatives
    defined = (positives > 0) & (negatives > 0)
    return {name: np.where(defined, value, np.nan) for name, value in found.items()}


def separation_values(item: Separated) -> dict[str, float]:
    """AUROC, AUPR and FPR95 of the sample itself."""
    found = separation_from_counts(
        item, np.ones((1, item.negatives), np.int64), np.ones((1, item.positives), np.int64)
    )
    return {name: float(value[0]) for name, value in found.items()}


def separation_jackknife(item: Separated) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """AUROC and AUPR with one example left out: (without each sorted negative, without each
    sorted positive), in closed form from the sorted structure (O(n), no resorting)."""
    negatives, positives = item.negatives, item.positives
    lowest = np.arange(negatives)
    # Positives beaten by each sorted negative (half for ties), and each positive's wins.
    beaten_by = 0.5 * (
        np.searchsorted(item.reach, lowest, side="right")
        + np.searchsorted(item.above, lowest, side="right")
    )
    wins = negatives - 0.5 * (item.reach + item.above)
    total = wins.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = (
            (total - beaten_by) / (positives * (negatives - 1.0)),
            (total - wins) / ((positives - 1.0) * negatives),
        )
        found = item.through + 1.0
        drawn = found + item.reach
        precision = found / drawn
        # A negative ranked above a positive's threshold raises that positive's precision.
        lifted = np.where(item.reach > 0, found / (drawn - 1.0), precision) - precision
        lifted_after = np.r_[np.cumsum(lifted[::-1])[::-1], 0.0]
        first_affected = np.searchsorted(item.reach, lowest, side="right")
        without_negative = (precision.sum() + lifted_after[first_affected]) / positives
        # A positive left out lowers the found count of every positive at or below its score.
        lowered = np.where(drawn > 1, (found - 1.0) / (drawn - 1.0), 0.0) - precision
        lowered_after = np.r_[np.cumsum(lowered[::-1])[::-1], 0.0]
        group_start = np.searchsorted(item.through, item.through, side="left")
        without_positive = (precision.sum() - precision + lowered_after[group_start] - lowered) / (
            positives - 1.0
        )
    return {"auroc": auroc, "aupr": (without_negative, without_positive)}


def resampled_separation(
    item: Separated,
    *,
    stratified: bool,
    resamples: int,
    rng: np.random.Generator,
    metrics: Sequence[str] = ("auroc", "aupr"),
) -> dict[str, np.ndarray]:
    """The metrics of `resamples` bootstrap resamples: each class resampled on its own when
    `stratified`, else all examples together."""
    count = item.negatives + item.positives
    parts = []
    for rows in resample_batches(resamples, count):
        if stratified:
            negative = drawn_counts(rng, item.negatives, rows)
            positive = drawn_counts(rng, item.positives, rows)
        else:
            drawn = drawn_counts(rng, count, rows)
            negative, positive = drawn[:, : item.negatives], drawn[:, item.negatives :]
        parts.append(separation_from_counts(item, negative, positive, metrics))
    return _joined(parts)


def _joined(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {}
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


@dataclass(frozen=True)
class Ranked:
    """Inputs sorted once by uncertainty ascending (most certain first), errors labelled."""

    position: np.ndarray  # the sorted slot of each input
    label: np.ndarray  # whether the input at each sorted slot is an error
    ends: np.ndarray  # the last sorted slot of each tie group

    @property
    def count(self) -> int:
        return int(self.label.size)

    @property
    def tied(self) -> bool:
        return self.ends.size < self.label.size


def ranked(uncertainty: np.ndarray, correct: np.ndarray) -> Ranked:
    """Sort by uncertainty once; tied inputs form one group whatever their input order."""
    uncertainty = np.asarray(uncertainty, dtype=np.float64).ravel()
    _validate(uncertainty)
    wrong = ~np.asarray(correct, dtype=bool).ravel()
    # Within a tie group the errors come last, so the slots do not depend on the input order.
    order = np.lexsort((wrong, uncertainty))
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    value = uncertainty[order]
    ends = np.flatnonzero(np.r_[value[1:] != value[:-1], True])
    return Ranked(position, wrong[order], ends)


def harmonic_numbers(count: int) -> np.ndarray:
    """H_0..H_count (H_0 = 0)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, count + 1))])


def selective_from_counts(
    item: Ranked, counts: np.ndarray, harmonic: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """AURC and E-AURC per row of draw counts of the sorted inputs; equal to `batch_aurc` and
    `batch_e_aurc` of the resampled arrays.

    A tie group of s inputs after b accepted ones, holding w errors with e errors before it,
    adds sum over k = b + 1..b + s of (e + (k - b) w / s) / k = (e - b w / s) D + w to the sum
    of risks, with D = H_{b + s} - H_b (harmonic numbers).
    """
    accepted = _cumulative(counts)
    errors = _cumulative(counts * item.label)
    if item.tied:
        edges = np.r_[0, item.ends + 1]
        accepted, errors = accepted[..., edges], errors[..., edges]
        share = np.diff(errors, axis=-1) / np.maximum(np.diff(accepted, axis=-1), 1)
        before = errors[..., :-1] - share * accepted[..., :-1]
    else:  # one input per group: an error's term counts the correct inputs before it, negated
        before = np.where(item.label, errors[..., :-1] - accepted[..., :-1], errors[..., :-1])
    total, wrong_total = accepted[..., -1], errors[..., -1]
    if harmonic is None:
        harmonic = harmonic_numbers(int(total.max(initial=0)))
    span = np.diff(np.take(harmonic, accepted), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        aurc = (np.einsum("...g,...g->...", before, span) + wrong_total) / total
        right = total - wrong_total
        oracle = (wrong_total - right * (harmonic[total] - harmonic[right])) / total
    return {"aurc": aurc, "e_aurc": aurc - oracle}


def selective_values(item: Ranked) -> dict[str, float]:
    """AURC and E-AURC of the sample itself."""
    found = selective_from_counts(item, np.ones((1, item.count), np.int64))
    return {name: float(value[0]) for name, value in found.items()}


def selective_jackknife(item: Ranked) -> dict[str, np.ndarray]:
    """AURC and E-AURC with each sorted input left out, in closed form (O(n)): the groups before
    the input's tie group keep their terms, its own group shrinks by one, and every later group
    starts one input (and one error, if the input is one) earlier."""
    count = item.count
    edges = np.r_[0, item.ends + 1]
    errors = np.r_[0, np.cumsum(item.label)][edges]
    size, wrong = np.diff(edges), np.diff(errors)
    start, before = edges[:-1], errors[:-1]
    harmonic = harmonic_numbers(count)
    share = wrong / size
    terms = (before - start * share) * (harmonic[edges[1:]] - harmonic[start]) + wrong
    ahead = np.r_[0.0, np.cumsum(terms)][:-1]  # the terms of the groups before each group
    # Later groups, shifted one input earlier: their terms and the harmonic spans.
    span = harmonic[np.maximum(edges[1:] - 1, 0)] - harmonic[np.maximum(start - 1, 0)]
    shifted = (before - (start - 1) * share) * span + wrong
    behind = np.r_[np.cumsum(shifted[::-1])[::-1], 0.0][1:]
    spans_behind = np.r_[np.cumsum(span[::-1])[::-1], 0.0][1:]
    group = np.searchsorted(item.ends, np.arange(count))
    error = item.label.astype(np.float64)
    left, left_wrong = size[group] - 1, wrong[group] - error
    own_span = harmonic[start[group] + left] - harmonic[start[group]]
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.where(
            left > 0,
            (before[group] - start[group] * left_wrong / np.maximum(left, 1)) * own_span
            + left_wrong,
            0.0,
        )
        aurc = (ahead[group] + own + behind[group] - error * spans_behind[group]) / (count - 1)
        right = count - 1 - (errors[-1] - error)
        oracle = count - 1 - right - right * (harmonic[count - 1] - harmonic[right.astype(int)])
        oracle = oracle / (count - 1)
    return {"aurc": aurc, "e_aurc": aurc - oracle}


def resampled_selective(
    item: Ranked, *, resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """AURC and E-AURC of `resamples` bootstrap resamples of all inputs."""
    harmonic = harmonic_numbers(item.count)
    parts = [
        selective_from_counts(item, drawn_counts(rng, item.count, rows), harmonic)
        for rows in resample_batches(resamples, item.count)
    ]
    return _joined(parts)


# --- exact intervals ----------------------------------------------------------------------------


def correct_count_range(item: Ranked) -> tuple[np.ndarray, np.ndarray]:
    """For j = 0..n, the fewest and the most correct inputs among the j most certain, over
    every order of the tied inputs."""
    right = ~item.label
    starts = np.r_[0, item.ends[:-1] + 1]
    group = np.searchsorted(item.ends, np.arange(item.count))
    right_before = np.r_[0, np.cumsum(right)][starts]
    right_in = np.add.reduceat(right.astype(np.int64), starts)
    wrong_in = item.ends - starts + 1 - right_in
    taken = np.arange(1, item.count + 1) - starts[group]  # inputs taken from the slot's group
    fewest = right_before[group] + np.maximum(0, taken - wrong_in[group])
    most = right_before[group] + np.minimum(taken, right_in[group])
    return np.r_[0, fewest], np.r_[0, most]


def selective_accuracy_interval(
    uncertainty: np.ndarray, correct: np.ndarray, coverage: float, confidence: float
) -> tuple[float, float]:
    """Exact interval of the population accuracy on the `coverage` most certain inputs.

    K, the number of sample inputs below the population's coverage quantile, is Bin(n, coverage)
    and unknown; given K, those inputs are the K most certain and their correct count is
    Bin(K, accuracy). So the smallest one-sided Clopper-Pearson lower bound (and the largest upper
    bound) over every K in a range that holds K with probability 1 - e bounds the accuracy, each
    side wrong with probability at most e + e = (1 - c) / 2; ties take each side's worst order.
    """
    item = ranked(uncertainty, correct)
    error = side_error(confidence) / 2.0
    low, high = binomial_range(item.count, coverage, error)
    fewest, most = correct_count_range(item)
    kept = np.arange(low, high + 1)
    lower, _ = binomial_bounds(fewest[kept], kept, error)
    _, upper = binomial_bounds(most[kept], kept, error)
    return float(lower.min()), float(upper.max())


def fpr_at_tpr_interval(
    scores_negative: np.ndarray, scores_positive: np.ndarray, tpr: float, confidence: float
) -> tuple[float, float]:
    """Exact interval of the population FPR at TPR `tpr`: order statistics of the positives
    bracket their (1 - tpr) quantile, and one-sided Clopper-Pearson bounds count the negatives at
    or above each bracket (given the labels the negatives are independent of the positives); each
    side is wrong with probability at most e + e = (1 - c) / 2."""
    negative = np.asarray(scores_negative, dtype=np.float64).ravel()
    positive = np.sort(np.asarray(scores_positive, dtype=np.float64).ravel())
    error = side_error(confidence) / 2.0
    low_rank, high_rank = quantile_ranks(positive.size, 1.0 - tpr, error)
    low = positive[low_rank - 1] if low_rank > 0 else -np.inf
    high = positive[high_rank - 1] if high_rank <= positive.size else np.inf
    above = np.array([np.sum(negative >= high), np.sum(negative >= low)])
    lower, upper = binomial_bounds(above, np.full(2, negative.size), error)
    return float(lower[0]), float(upper[1])


def aurc_bounds(errors: int, count: int, confidence: float) -> tuple[float, float]:
    """A conservative interval of the population AURC from the error rate r alone: for any
    ranking r + (1 - r) log(1 - r) <= AURC <= r (1 + log(1 / r)), since the risk at coverage g is
    at least max(0, (r - 1 + g) / g) and at most min(1, r / g); r by Clopper-Pearson."""
    low, high = clopper_pearson(errors, count, confidence)
    lower = low + (1.0 - low) * math.log1p(-low) if low < 1.0 else 1.0
    upper = high * (1.0 - math.log(high)) if high > 0.0 else 0.0
    return lower, upper


def average_precision_floor(share: float, fpr_bound: float, recall: float) -> float:
    """A lower bound of the population average precision int_0^1 precision(r) dr, from a
    positive share at most the true one and a bound at least the true FPR at TPR `recall`.

    Up to that recall the FPR is at most the bound, so precision(r) >= s r / (s r + (1 - s) f);
    beyond it the FPR is at most 1. Both integrals have closed forms.
    """
    if share <= 0.0:
        return 0.0
    odds = (1.0 - share) / share

    def integral(low: float, high: float, offset: float) -> float:
        """int_low^high r / (r + offset) dr."""
        if offset <= 0.0:
            return high - low
        return high - low - offset * math.log((high + offset) / (low + offset))

    return integral(0.0, recall, odds * fpr_bound) + integral(recall, 1.0, odds)
