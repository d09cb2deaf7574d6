"""Decision rules: a value and its interval against a bound, as point, strict or lenient."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import get_args

from robustness_checks.results import Comparison, Decision, Outcome, format_number

DECISIONS: tuple[str, ...] = get_args(Decision)


@dataclass(frozen=True)
class Judging:
    """What turning statistics into an outcome needs: the confidence level and the rule."""

    confidence: float
    decision: Decision


def decide(
    value: float,
    ci: tuple[float, float] | None,
    comparison: Comparison | None,
    threshold: float | None,
    decision: Decision,
) -> Outcome:
    """The outcome of one bound.

    point: the estimate against the bound. strict and lenient: passed when the whole interval is
    inside the bound, failed when the whole interval is outside it, inconclusive otherwise; the
    rules differ in what inconclusive means for the pytest item (strict fails it, lenient passes
    it with a warning). The two-sided interval at level c gives one-sided bounds at (1 + c) / 2,
    so a false pass (strict) or false fail (lenient) happens at most (1 - c) / 2 of the time.
    Under strict and lenient a missing, non-finite or zero-width interval decides nothing: the
    outcome is inconclusive (an interval that cannot be trusted never passes strict).
    """
    if comparison is None or threshold is None:
        return "passed"
    within = value <= threshold if comparison == "<=" else value >= threshold
    if decision == "point":
        return "passed" if within and math.isfinite(value) else "failed"
    if not trusted(ci):
        return "inconclusive"
    assert ci is not None
    low, high = ci
    inside = high <= threshold if comparison == "<=" else low >= threshold
    outside = low > threshold if comparison == "<=" else high < threshold
    if inside:
        return "passed"
    return "failed" if outside else "inconclusive"


def trusted(ci: tuple[float, float] | None) -> bool:
    """Whether an interval can decide under strict or lenient: present, finite, ordered and of
    positive width (a zero-width interval comes from degenerate resamples, not from certainty)."""
    return ci is not None and all(map(math.isfinite, ci)) and ci[0] < ci[1]


def item_passes(outcome: Outcome, decision: Decision) -> bool:
    """Whether the pytest item passes: passed, or inconclusive under lenient."""
    return outcome == "passed" or (outcome == "inconclusive" and decision == "lenient")


def to_settle(value: float, ci: tuple[float, float], threshold: float, examples: int) -> int | None:
    """About how many more examples would shrink the interval off the bound: the side of the
    interval that faces the bound shrinks as 1 / sqrt(n). None when the estimate sits on it."""
    gap = abs(value - threshold)
    half = ci[1] - value if value < threshold else value - ci[0]
    if gap <= 0 or examples <= 0 or half <= 0:
        return None
    return max(1, math.ceil(round(examples * (half / gap) ** 2, 6)) - examples)


def inconclusive_note(
    value: float,
    ci: tuple[float, float],
    threshold: float,
    examples: int,
    decision: Decision,
) -> str:
    """'is inconclusive: the 95% interval contains the bound ...; about N more examples ...'."""
    more = to_settle(value, ci, threshold, examples)
    settle = (
        f"about {more:,} more examples would settle it"
        if more is not None
        else "the estimate sits on the bound, so more examples may not settle it"
    )
    verdict = "fails" if decision == "strict" else "passes with a warning"
    return (
        f"inconclusive under decision {decision} (the interval "
        f"{format_number(ci[0])} to {format_number(ci[1])} contains the bound "
        f"{format_number(threshold)}; the check {verdict}): {settle}"
    )
