"""Shared result helpers: a bounded result from a point estimate, and the data-in-bounds check."""

from __future__ import annotations

from typing import Any

from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext
from robustness_checks.results import CheckResult, Comparison, outcome_of
from robustness_checks.spec.schema import CheckSpec


def bounded_result(
    context: CheckContext,
    params: CheckSpec,
    *,
    metric: str,
    value: float,
    ci: tuple[float, float] | None,
    maximum: float | None = None,
    minimum: float | None = None,
    examples: int = 0,
    details: dict[str, Any] | None = None,
    condition: str | None = None,
    bound_name: str | None = None,
) -> CheckResult:
    """A result that passes when the point estimate is within the given max or min bound."""
    comparison: Comparison | None = None
    threshold: float | None = None
    passed = True
    if maximum is not None:
        comparison, threshold, passed = "<=", maximum, value <= maximum
    elif minimum is not None:
        comparison, threshold, passed = ">=", minimum, value >= minimum
    return CheckResult(
        check=params.name,
        type=params.type,
        metric=metric,
        value=float(value),
        comparison=comparison,
        threshold=threshold,
        ci=ci,
        confidence=context.confidence,
        outcome=outcome_of(bool(passed)),
        examples=examples,
        details=details or {},
        condition=condition,
        bound_name=bound_name,
    )


def check_inside_bounds(context: CheckContext) -> None:
    """Raise unless every input lies within the spec's `bounds` (perturbations clip to them)."""
    if context.bounds is None or not len(context.examples):
        return
    lo, hi = context.bounds
    x = context.examples.x
    if bool((x < lo).any() or (x > hi).any()):
        raise RobustnessError(
            f"the data lies in [{x.min().item():g}, {x.max().item():g}], outside the spec's bounds "
            f"[{lo:g}, {hi:g}]; set `bounds` to the raw input range (null for unbounded), or "
            "move normalisation into model.preprocess"
        )
