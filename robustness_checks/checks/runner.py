"""Run one check in a context: validate parameters, time it, count its model evaluations."""

from __future__ import annotations

import time
import warnings

from robustness_checks.checks.registry import check_type
from robustness_checks.errors import RobustnessWarning
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.diagnostics import findings_warnings, watching
from robustness_checks.execution.distributed import gather_objects, total
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec


def execute(context: CheckContext, params: CheckSpec) -> CheckResult:
    """Run the check `params` describes; exceptions propagate to the caller."""
    entry = check_type(params.type)
    if params.confidence is not None:
        context.confidence = params.confidence
    before = context.evaluations
    start = time.perf_counter()
    with watching([context.model, *context.ensemble]) as diagnostics:
        result = entry.run(context, params)
    findings = gather_objects([diagnostics.findings()], context.world)
    summed = {key: sum(found[key] for found in findings) for key in findings[0]}
    result.warnings = list(
        dict.fromkeys([*result.warnings, *context.warnings, *findings_warnings(summed)])
    )
    result.seconds = time.perf_counter() - start
    # Under torch.distributed every process counts its own share.
    result.evaluations = total(context.evaluations - before, context.world)
    return result


def emit_warnings(result: CheckResult) -> None:
    """Each of the result's warnings as a `RobustnessWarning` naming the check (pytest lists them
    in its warnings summary). Call it after the result is recorded: with `-W error` it raises."""
    for message in result.warnings:
        warnings.warn(f"check {result.check!r}: {message}", RobustnessWarning, stacklevel=3)


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
        outcome="error",
        evaluations=evaluations,
        seconds=seconds,
        error=f"{type(error).__name__}: {error}",
    )
