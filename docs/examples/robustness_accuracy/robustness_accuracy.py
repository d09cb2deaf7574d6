"""A third-party check type for robustness_checks: clean accuracy at least a bound."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics.intervals import clopper_pearson
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec


class AccuracyCheck(CheckSpec):
    """Parameters of an `accuracy` check."""

    type: Literal["accuracy"]
    min: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        None, description="smallest allowed accuracy"
    )


def run_accuracy(context: CheckContext, params: AccuracyCheck) -> CheckResult:
    """Count correct predictions in batches; exact (Clopper-Pearson) interval."""
    correct = 0
    with torch.no_grad():
        for _, x, y in context.examples.batches(context.device):
            correct += int((context.model(x).argmax(dim=1) == y).sum())
    n = len(context.examples)
    return bounded_result(
        context,
        params,
        metric="accuracy",
        value=correct / n,
        ci=clopper_pearson(correct, n, context.confidence),
        minimum=params.min,
        examples=n,
        details={"correct": correct},
        bound_name="min",
    )


CHECK = CheckType(
    name="accuracy",
    params=AccuracyCheck,
    run=run_accuracy,
    summary="clean accuracy at least a bound, with an exact interval",
    metrics={"accuracy": "higher"},
    docs="extending.md",
)
