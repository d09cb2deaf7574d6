"""Run one check in a context: validate parameters, time it, count its model evaluations."""

from __future__ import annotations

import time

from robustness_checks.context import CheckContext
from robustness_checks.registry import check_type
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec


def execute(context: CheckContext, params: CheckSpec) -> CheckResult:
    """Run the check `params` describes; exceptions propagate to the caller."""
    entry = check_type(params.type)
    if params.confidence is not None:
        context.confidence = params.confidence
    before = context.evaluations
    start = time.perf_counter()
    result = entry.run(context, params)
    result.seconds = time.perf_counter() - start
    result.evaluations = context.evaluations - before
    return result


def error_result(
    params: CheckSpec,
    error: BaseException,
    *,
    confidence: float,
    seconds: float,
    evaluations: int = 0,
) -> CheckResult:
    """The result recorded for a check that raised instead of measuring."""
    return CheckResult(
        check=params.name,
        type=params.type,
        metric=getattr(params, "metric", params.type),
        value=float("nan"),
        confidence=confidence,
        passed=False,
        outcome="error",
        evaluations=evaluations,
        seconds=seconds,
        error=f"{type(error).__name__}: {error}",
    )
