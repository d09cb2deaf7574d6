"""Ranking metrics of many bootstrap resamples from one sorted order, and their jackknife."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robustness_checks.metrics.intervals import (
    drawn_counts,
    resample_batches,
)
from robustness_checks.metrics.ranking import _validate

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
