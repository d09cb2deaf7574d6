"""The `selective` check: accuracy at a coverage, or AURC, when abstaining on uncertain inputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.report_data import score_histogram
from robustness_checks.checks.common.scored import ScoredCheck, score_examples, thinned
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics import ranking
from robustness_checks.metrics.intervals import bootstrap_interval
from robustness_checks.results import CheckResult, format_number
from robustness_checks.spec.schema import Probability


class SelectiveCheck(ScoredCheck):
    """Parameters of a `selective` check."""

    type: Literal["selective"]
    coverage: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        None, description="share of inputs kept (the most certain ones)"
    )
    min_accuracy: Probability | None = Field(None, description="bound at `coverage`")
    max_aurc: Probability | None = Field(None, description="bound on the AURC")

    @model_validator(mode="after")
    def _coverage_with_accuracy(self) -> SelectiveCheck:
        if self.min_accuracy is not None and self.coverage is None:
            raise ValueError("min_accuracy needs a coverage (the share of inputs kept)")
        if self.min_accuracy is not None and self.max_aurc is not None:
            raise ValueError("give min_accuracy (at coverage) or max_aurc, not both")
        return self


def run_selective(context: CheckContext, params: SelectiveCheck) -> CheckResult:
    """Rank inputs by the score, abstain on the most uncertain, measure the kept accuracy."""
    scores, predictions = score_examples(context, params, context.examples, "selective")
    uncertainty = scores.numpy()
    correct = (predictions == context.examples.y).numpy()
    coverage, risk = ranking.risk_coverage_curve(uncertainty, correct)
    curve = thinned(coverage, risk)
    details: dict[str, Any] = {
        "score": params.score,
        "accuracy": float(correct.mean()),
        "aurc": ranking.aurc(uncertainty, correct),
        "e_aurc": ranking.e_aurc(uncertainty, correct),
        "risk_coverage": {"coverage": curve["x"], "risk": curve["y"]},
        # For the report: the score's histogram for correct and wrong predictions.
        "score_histogram": score_histogram(
            params.score, [("", {"correct": uncertainty[correct], "wrong": uncertainty[~correct]})]
        ),
    }
    if params.coverage is not None:
        details["coverage"] = params.coverage
        details["accuracy_at_coverage"] = ranking.selective_accuracy(
            uncertainty, correct, params.coverage
        )
    if params.min_accuracy is not None:
        level = params.coverage
        assert level is not None
        metric, bound_name, bound = (
            "accuracy_at_coverage",
            "min_accuracy",
            {"minimum": params.min_accuracy},
        )
        statistic = lambda u, c: ranking.batch_selective_accuracy(u, c.astype(bool), level)  # noqa: E731
        condition = f"keeping the {format_number(level)} most certain by {params.score}"
    else:
        metric, bound_name, bound = "aurc", "max_aurc", {"maximum": params.max_aurc}
        statistic = lambda u, c: ranking.batch_aurc(u, c.astype(bool))  # noqa: E731
        condition = f"ranking by {params.score}"
    ci = bootstrap_interval(
        statistic,
        [uncertainty, correct.astype(np.float64)],
        confidence=context.confidence,
        rng=context.numpy_rng("bootstrap"),
        resamples=params.bootstrap,
    )
    return bounded_result(
        context,
        params,
        metric=metric,
        value=details[metric],
        ci=ci,
        examples=len(correct),
        details=details,
        condition=condition,
        bound_name=bound_name,
        **bound,
    )


CHECK = CheckType(
    name="selective",
    params=SelectiveCheck,
    run=run_selective,
    summary="accuracy at a coverage, or AURC, when abstaining on the most uncertain inputs",
    metrics={"accuracy_at_coverage": "higher", "aurc": "lower", "e_aurc": "lower"},
    plot="robustness_checks.reporting.plots:risk_coverage",
    data_fields=("fit_data",),
    docs="uncertainty.md",
)
