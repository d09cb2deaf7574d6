"""The `failure_prediction` check: how well a score separates the model's errors from its hits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.report_data import (
    add_saliency,
    error_examples,
    score_histogram,
)
from robustness_checks.checks.common.scored import ScoredCheck, SeparationDetails, score_examples
from robustness_checks.checks.common.separation import (
    measure_separation,
    separation_details,
    separation_warnings,
)
from robustness_checks.details import ExampleRow
from robustness_checks.errors import InsufficientData
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics.intervals import Estimate
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import Probability

ERROR_NAMES = {"aupr": "aupr_error"}  # the separation metrics' names in this check
METRICS = ("aupr_error", "auroc", "fpr95")
SEPARATION_NAMES = {mine: theirs for theirs, mine in ERROR_NAMES.items()}


class FailurePredictionCheck(ScoredCheck):
    """Parameters of a `failure_prediction` check."""

    type: Literal["failure_prediction"]
    metric: Literal["aupr_error", "auroc"] = "aupr_error"
    min: Probability | None = Field(None, description="smallest allowed value of the metric")


def measure_failure_prediction(
    scores: np.ndarray,
    wrong: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
    metrics: Sequence[str] = METRICS,
) -> dict[str, Estimate]:
    """aupr_error, auroc and fpr95 (those in `metrics`) of the scores, errors the positive
    class, with intervals; the errors are part of the sample, so the bootstrap resamples all
    examples together. Raises InsufficientData when the model makes no errors or only errors."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    wrong = np.asarray(wrong, dtype=bool).ravel()
    if wrong.all() or not wrong.any():
        kind = "no errors" if not wrong.any() else "only errors"
        raise InsufficientData(
            f"the model makes {kind} on these {len(wrong)} examples, so there is nothing to "
            "separate; use more (or harder) examples"
        )
    estimates = measure_separation(
        scores[~wrong],
        scores[wrong],
        resamples=resamples,
        confidence=confidence,
        rng=rng,
        stratified=False,
        metrics=[SEPARATION_NAMES.get(name, name) for name in metrics],
    )
    return {ERROR_NAMES.get(name, name): estimate for name, estimate in estimates.items()}


class FailurePredictionDetails(SeparationDetails):
    """Details of a `failure_prediction` result; gated: AUPR-error and AUROC."""

    aupr_error: float | None = None
    error_rate: float
    failing_examples: list[ExampleRow]

    def shown_examples(self) -> list[ExampleRow]:
        return self.failing_examples


def run_failure_prediction(context: CheckContext, params: FailurePredictionCheck) -> CheckResult:
    """Errors are the positives; the score should rank them above correct predictions."""
    scores, predictions = score_examples(context, params, context.examples, "failure")
    wrong = (predictions != context.examples.y).numpy()
    values = scores.numpy()
    estimates = measure_failure_prediction(
        values,
        wrong,
        resamples=params.bootstrap,
        confidence=context.confidence,
        rng=context.numpy_rng("bootstrap"),
    )
    context.warnings.extend(
        separation_warnings(
            estimates,
            int((~wrong).sum()),
            int(wrong.sum()),
            score=params.score,
            negative_name="correct predictions",
            positive_name="errors",
        )
    )
    details = FailurePredictionDetails(
        score=params.score,
        **separation_details(estimates, values[~wrong], values[wrong]),
        error_rate=float(wrong.mean()),
        # Report pictures: the score's histogram for hits and errors, and the errors it misses.
        score_histogram=score_histogram(
            params.score, [("", {"correct": values[~wrong], "wrong": values[wrong]})]
        ),
        failing_examples=error_examples(context, wrong, values, predictions.numpy(), params.score),
    )
    details.saliency_maps = add_saliency(context, details.failing_examples)
    return bounded_result(
        context,
        params,
        metric=params.metric,
        value=estimates[params.metric].value,
        ci=estimates[params.metric].interval,
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
    details=FailurePredictionDetails,
    validity="robustness_checks.validity.ranking:failure_prediction_cases",
    gate_cases="robustness_checks.validity.gates:failure_prediction_cases",
    random_model="scores and correctness come from one draw per example, those of the random "
    "model as deployed; the interval covers examples and draws",
)
