"""Run one check in a context: time it, count its model evaluations, and check what it returns."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.registry import CheckTypeError, check_type, origin
from robustness_checks.details import Details, PartialWork
from robustness_checks.errors import InsufficientData, RobustnessWarning
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.diagnostics import findings_warnings, watching
from robustness_checks.execution.distributed import gather_objects, total
from robustness_checks.execution.randomness import randomness_warning
from robustness_checks.execution.seeding import derive_seed, seeded_torch
from robustness_checks.execution.watch import CheckTimeout
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec


def execute(context: CheckContext, params: CheckSpec) -> CheckResult:
    """Run the check `params` describes; exceptions propagate to the caller. Data too thin for
    the statistic is an inconclusive result under strict and lenient (an error under point)."""
    entry = check_type(params.type)
    context.examples = context.examples.take(params.limit)
    before = context.evaluations
    start = time.perf_counter()
    # The model's own draws (input noise, dropout left on) come from torch's generators, seeded
    # here for the check and again per batch (CheckContext.map_examples): same seed, same draws.
    seed = derive_seed(context.seed, context.check_name, "model")
    with (
        watching([context.model, *context.ensemble]) as diagnostics,
        seeded_torch(seed, context.device),
    ):
        context.learn_randomness(entry.random_model)
        try:
            result = entry.run(context, params)
        except InsufficientData as error:
            if context.decision == "point":
                raise
            result = insufficient_result(context, params, error)
    result = checked(entry, result, params)
    randomness = context.randomness
    if randomness is not None and hasattr(result.details, "model_randomness"):
        result.details.model_randomness = randomness
    if randomness is not None and randomness.random:
        context.warnings.insert(0, randomness_warning(randomness))
    findings = gather_objects([diagnostics.findings()], context.world)
    summed = {key: sum(found[key] for found in findings) for key in findings[0]}
    result.warnings = list(
        dict.fromkeys([*result.warnings, *context.warnings, *findings_warnings(summed)])
    )
    result.seconds = time.perf_counter() - start
    # Under torch.distributed every process counts its own share.
    result.evaluations = total(context.evaluations - before, context.world)
    return result


def checked(entry: CheckType, result: object, params: CheckSpec) -> CheckResult:
    """`result` when it is a well-formed result of `entry`; a CheckTypeError naming the check
    type and the package it came from otherwise (a third-party run function that returns a dict,
    None, a NaN that it calls passed, or a metric it does not declare)."""
    where = f"check type {entry.name!r} (from {origin(entry)})"
    if not isinstance(result, CheckResult):
        raise CheckTypeError(
            f"{where} returned {type(result).__name__}, not a CheckResult; its run function must "
            "return robustness_checks.results.CheckResult (bounded_result builds one)"
        )
    if (
        result.outcome == "inconclusive"
        and result.decision == "point"
        and entry.point_inconclusive is None
    ):
        raise CheckTypeError(
            f"{where} returned outcome 'inconclusive' under decision point, which it does not "
            "declare (CheckType.point_inconclusive): the point rule decides by the estimate"
        )
    if result.outcome in ("passed", "failed") and not math.isfinite(result.value):
        raise CheckTypeError(
            f"{where} returned value {result.value} with outcome {result.outcome!r}: a check "
            "that measured no finite value cannot pass or fail (make it an error or inconclusive)"
        )
    if result.metric not in entry.metrics and result.outcome not in ("error", "skipped"):
        raise CheckTypeError(
            f"{where} returned metric {result.metric!r}, which its record does not declare "
            f"(metrics: {', '.join(entry.metrics) or 'none'}); add it to CheckType.metrics"
        )
    if result.ci is not None:
        low, high = result.ci
        if not (low <= high) or not all(map(math.isfinite, result.ci)):
            raise CheckTypeError(
                f"{where} returned the interval {list(result.ci)}: an interval must be finite "
                "with low <= high (or None)"
            )
    if not isinstance(result.details, entry.details) and len(result.details.as_json()):  # type: ignore[union-attr]
        result.details = entry.details.model_validate(result.details.as_json())  # type: ignore[union-attr]
    result.check = params.name
    return result


def insufficient_result(
    context: CheckContext, params: CheckSpec, error: InsufficientData
) -> CheckResult:
    """An inconclusive result for data that cannot support the statistic."""
    entry = check_type(params.type)
    metric = getattr(params, "metric", None)
    metric = metric if metric in entry.metrics else entry.deciding_metrics()[0]
    note = f"inconclusive under decision {context.decision}: {error}"
    return CheckResult(
        check=params.name,
        type=params.type,
        metric=metric,
        value=float("nan"),
        confidence=context.confidence,
        outcome="inconclusive",
        decision=context.decision,  # type: ignore[arg-type]
        examples=len(context.examples),
        statement=f"{metric} cannot be measured: {error}",
        note=note,
        warnings=[note] if context.decision == "lenient" else [],
        details=Details(),  # nothing was measured: no details of the type
    )


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
    """The result recorded for a check that raised instead of measuring; one that ran past its
    timeout keeps what it had finished (details.timed_out)."""
    message = f"{type(error).__name__}: {error}"
    details: dict[str, Any] = {}
    examples = 0
    if isinstance(error, CheckTimeout) and error.total:
        done = PartialWork(examples_done=error.done, examples=error.total, figures=error.figures)
        details, examples = {"timed_out": done}, error.done
        message += f"; kept: {done.summary()}"
    return CheckResult(
        check=params.name,
        type=params.type,
        metric=getattr(params, "metric", params.type),
        value=float("nan"),
        confidence=confidence,
        outcome="error",
        evaluations=evaluations,
        seconds=seconds,
        examples=examples,
        details=details,
        error=message,
    )
