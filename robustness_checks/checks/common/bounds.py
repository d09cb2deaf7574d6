"""Shared result helpers: a bounded result from a point estimate, and the data-in-bounds check."""

from __future__ import annotations

from typing import Any

from robustness_checks.checks.common.decision import decide, inconclusive_note
from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext
from robustness_checks.results import CheckResult, Comparison
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
    """A result deciding the value and its interval against the max or min bound under the
    context's decision rule (point, strict or lenient)."""
    comparison: Comparison | None = None
    threshold: float | None = None
    if maximum is not None:
        comparison, threshold = "<=", maximum
    elif minimum is not None:
        comparison, threshold = ">=", minimum
    outcome = decide(value, ci, comparison, threshold, context.decision)
    note = None
    warnings = []
    if outcome == "inconclusive" and ci is not None and threshold is not None:
        note = inconclusive_note(value, ci, threshold, examples, context.decision)
        if context.decision == "lenient":
            warnings.append(note)
    return CheckResult(
        check=params.name,
        type=params.type,
        metric=metric,
        value=float(value),
        comparison=comparison,
        threshold=threshold,
        ci=ci,
        confidence=context.confidence,
        outcome=outcome,
        decision=context.decision,
        examples=examples,
        details=details or {},
        condition=condition,
        bound_name=bound_name,
        note=note,
        warnings=warnings,
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
