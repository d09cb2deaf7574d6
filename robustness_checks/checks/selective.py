"""The `selective` check: accuracy at a coverage, or AURC, when abstaining on uncertain inputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from robustness_checks.checks.base import CheckType, bounded_result
from robustness_checks.checks.scored import Probability, ScoredCheck, thinned
from robustness_checks.checks.scoring import scores_and_predictions
from robustness_checks.context import CheckContext
from robustness_checks.metrics import ranking
from robustness_checks.results import CheckResult, format_number
from robustness_checks.stats import bootstrap_interval


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
    scores, predictions = scores_and_predictions(
        context,
        context.examples,
        params.score,
        params.uncertainty,
        params.score_options(),
        "selective",
    )
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
    }
    rng = context.numpy_rng("bootstrap")
    if params.coverage is not None:
        details["coverage"] = params.coverage
        details["accuracy_at_coverage"] = ranking.selective_accuracy(
            uncertainty, correct, params.coverage
        )
    if params.min_accuracy is not None:
        coverage_level = params.coverage
        assert coverage_level is not None
        ci = bootstrap_interval(
            lambda u, c: ranking.batch_selective_accuracy(u, c.astype(bool), coverage_level),
            [uncertainty, correct.astype(np.float64)],
            confidence=context.confidence,
            rng=rng,
            resamples=params.bootstrap,
        )
        result = bounded_result(
            context,
            params,
            metric="accuracy_at_coverage",
            value=details["accuracy_at_coverage"],
            ci=ci,
            minimum=params.min_accuracy,
            examples=len(correct),
            details=details,
        )
        kept = format_number(coverage_level)
        result.condition = f"keeping the {kept} most certain by {params.score}"
        result.bound_name = "min_accuracy"
        return result
    ci = bootstrap_interval(
        lambda u, c: ranking.batch_aurc(u, c.astype(bool)),
        [uncertainty, correct.astype(np.float64)],
        confidence=context.confidence,
        rng=rng,
        resamples=params.bootstrap,
    )
    result = bounded_result(
        context,
        params,
        metric="aurc",
        value=details["aurc"],
        ci=ci,
        maximum=params.max_aurc,
        examples=len(correct),
        details=details,
    )
    result.condition = f"ranking by {params.score}"
    result.bound_name = "max_aurc"
    return result


CHECK = CheckType(
    name="selective",
    params=SelectiveCheck,
    run=run_selective,
    summary="accuracy at a coverage, or AURC, when abstaining on the most uncertain inputs",
)
