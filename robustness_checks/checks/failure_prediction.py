"""The `failure_prediction` check: how well a score separates the model's errors from its hits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.report_data import (
    add_saliency,
    error_examples,
    score_histogram,
)
from robustness_checks.checks.common.scored import ScoredCheck, score_examples
from robustness_checks.checks.common.separation import separation
from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import Probability


class FailurePredictionCheck(ScoredCheck):
    """Parameters of a `failure_prediction` check."""

    type: Literal["failure_prediction"]
    metric: Literal["aupr_error", "auroc"] = "aupr_error"
    min: Probability | None = Field(None, description="smallest allowed value of the metric")


def run_failure_prediction(context: CheckContext, params: FailurePredictionCheck) -> CheckResult:
    """Errors are the positives; the score should rank them above correct predictions."""
    scores, predictions = score_examples(context, params, context.examples, "failure")
    wrong = (predictions != context.examples.y).numpy()
    if wrong.all() or not wrong.any():
        kind = "no errors" if not wrong.any() else "only errors"
        raise RobustnessError(
            f"the model makes {kind} on these {len(wrong)} examples, so there is nothing to "
            "separate; use more (or harder) examples"
        )
    values = scores.numpy()
    value, ci, details = separation(
        context, params.metric, values[~wrong], values[wrong], params.bootstrap
    )
    details["aupr_error"] = details.pop("aupr")
    details["error_rate"] = float(wrong.mean())
    details["score"] = params.score
    # Report pictures: the score's histogram for hits and errors, and the errors it misses most.
    details["score_histogram"] = score_histogram(
        params.score, [("", {"correct": values[~wrong], "wrong": values[wrong]})]
    )
    details["failing_examples"] = error_examples(
        context, wrong, values, predictions.numpy(), params.score
    )
    saliency = add_saliency(context, details["failing_examples"])
    if saliency:
        details["saliency_maps"] = saliency
    return bounded_result(
        context,
        params,
        metric=params.metric,
        value=value,
        ci=ci,
        minimum=params.min,
        examples=len(wrong),
        details=details,
        condition=f"of {params.score} for the {int(wrong.sum())} errors",
    )


CHECK = CheckType(
    name="failure_prediction",
    params=FailurePredictionCheck,
    run=run_failure_prediction,
    summary="AUPR-error or AUROC of a confidence score at telling errors from correct predictions",
    metrics={"aupr_error": "higher", "auroc": "higher"},
    plot="robustness_checks.reporting.plots:roc",
    data_fields=("fit_data",),
    docs="uncertainty.md",
)
