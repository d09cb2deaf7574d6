"""What a check type is (`CheckType`) and the shared helpers that turn measurements into results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustness_checks.execution.context import CheckContext
from robustness_checks.results import CheckResult, Comparison
from robustness_checks.spec.schema import CheckSpec


@dataclass(frozen=True)
class CheckType:
    """A registry entry: the `type` name, its parameter model and the function that runs it."""

    name: str
    params: type[CheckSpec]
    run: Callable[[CheckContext, Any], CheckResult]
    summary: str


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
        passed=bool(passed),
        outcome="passed" if passed else "failed",
        examples=examples,
        details=details or {},
        condition=condition,
        bound_name=bound_name,
    )
