"""The `selective` check: accuracy at a coverage, or AURC, when abstaining on uncertain inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.report_data import score_histogram
from robustness_checks.checks.common.scored import (
    MIN_PER_CLASS,
    RankedDetails,
    ScoredCheck,
    estimate_details,
    score_examples,
    thinned,
)
from robustness_checks.details import Block
from robustness_checks.errors import InsufficientData
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics import ranking, ranking_intervals, ranking_resampled
from robustness_checks.metrics.intervals import Estimate, bca_interval, clopper_pearson
from robustness_checks.results import CheckResult, format_number
from robustness_checks.spec.schema import Probability

METRICS = ("accuracy", "accuracy_at_coverage", "aurc", "e_aurc")


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


def measure_selective(
    uncertainty: np.ndarray,
    correct: np.ndarray,
    coverage: float | None,
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
    metrics: Sequence[str] = METRICS,
) -> dict[str, Estimate]:
    """accuracy, accuracy_at_coverage (with a coverage), aurc and e_aurc (those in `metrics`),
    each with an interval.

    accuracy: Clopper-Pearson. accuracy_at_coverage: exact, over the range of the coverage cut
    (`ranking_intervals.selective_accuracy_interval`). aurc and e_aurc: the BCa bootstrap with at
    least MIN_PER_CLASS errors and correct predictions, otherwise (or when the resamples
    collapse) the conservative bounds from the error rate (`ranking_intervals.aurc_bounds`;
    e_aurc from 0 to AURC's upper bound). Raises InsufficientData without examples.
    """
    uncertainty = np.asarray(uncertainty, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=bool).ravel()
    count, right = correct.size, int(correct.sum())
    if not count:
        raise InsufficientData("no examples to rank")
    estimates = {}
    if "accuracy" in metrics:
        interval = clopper_pearson(right, count, confidence)
        estimates["accuracy"] = Estimate(right / count, interval, "exact: Clopper-Pearson")
    if "accuracy_at_coverage" in metrics and coverage is not None:
        estimates["accuracy_at_coverage"] = Estimate(
            ranking.selective_accuracy(uncertainty, correct, coverage),
            ranking_intervals.selective_accuracy_interval(
                uncertainty, correct, coverage, confidence
            ),
            "exact: Clopper-Pearson over the range of the coverage cut",
        )
    if "aurc" in metrics or "e_aurc" in metrics:
        found = _area_estimates(uncertainty, correct, resamples, confidence, rng)
        estimates.update({name: found[name] for name in ("aurc", "e_aurc") if name in metrics})
    return estimates


def _area_estimates(
    uncertainty: np.ndarray,
    correct: np.ndarray,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, Estimate]:
    """AURC and E-AURC with their intervals (see `measure_selective`)."""
    count, right = correct.size, int(correct.sum())
    item = ranking_resampled.ranked(uncertainty, correct)
    values = ranking_resampled.selective_values(item)
    intervals: dict[str, tuple[float, float] | None] = {}
    if min(right, count - right) >= MIN_PER_CLASS and resamples > 0:
        drawn = ranking_resampled.resampled_selective(item, resamples=resamples, rng=rng)
        jackknife = ranking_resampled.selective_jackknife(item)
        intervals = {
            name: bca_interval(values[name], drawn[name], [jackknife[name]], confidence)
            for name in drawn
        }
    low, high = ranking_intervals.aurc_bounds(count - right, count, confidence)
    fallback = {"aurc": (low, high), "e_aurc": (0.0, high)}
    found = {}
    for name in ("aurc", "e_aurc"):
        interval = intervals.get(name)
        found[name] = (
            Estimate(values[name], interval, "BCa bootstrap")
            if interval is not None
            else Estimate(values[name], fallback[name], "conservative: from the error rate")
        )
    return found


class RiskCoverage(Block):
    """Selective risk against coverage, thinned for reports."""

    coverage: list[float]
    risk: list[float]


class SelectiveDetails(RankedDetails):
    """Details of a `selective` result; gated: accuracy at coverage, AURC and E-AURC."""

    accuracy: float | None = None
    accuracy_at_coverage: float | None = None
    aurc: float | None = None
    e_aurc: float | None = None
    coverage: float | None = None
    risk_coverage: RiskCoverage


def run_selective(context: CheckContext, params: SelectiveCheck) -> CheckResult:
    """Rank inputs by the score, abstain on the most uncertain, measure the kept accuracy."""
    scores, predictions = score_examples(context, params, context.examples, "selective")
    uncertainty = scores.numpy()
    correct = (predictions == context.examples.y).numpy()
    estimates = measure_selective(
        uncertainty,
        correct,
        params.coverage,
        resamples=params.bootstrap,
        confidence=context.confidence,
        rng=context.numpy_rng("bootstrap"),
    )
    details = selective_details(params, estimates, uncertainty, correct)
    if params.min_accuracy is not None:
        assert params.coverage is not None
        metric, bound_name, bound = (
            "accuracy_at_coverage",
            "min_accuracy",
            {"minimum": params.min_accuracy},
        )
        condition = f"keeping the {format_number(params.coverage)} most certain by {params.score}"
    else:
        metric, bound_name, bound = "aurc", "max_aurc", {"maximum": params.max_aurc}
        condition = f"ranking by {params.score}"
    return bounded_result(
        context,
        params,
        metric=metric,
        value=estimates[metric].value,
        ci=estimates[metric].interval,
        examples=len(correct),
        details=details,
        condition=condition,
        bound_name=bound_name,
        **bound,
    )


def selective_details(
    params: SelectiveCheck,
    estimates: dict[str, Estimate],
    uncertainty: np.ndarray,
    correct: np.ndarray,
) -> SelectiveDetails:
    """The metrics with their intervals, the risk-coverage curve and the score's histogram."""
    coverage, risk = ranking.risk_coverage_curve(uncertainty, correct)
    curve = thinned(coverage, risk)
    return SelectiveDetails(
        score=params.score,
        **estimate_details(estimates),
        coverage=params.coverage,
        risk_coverage=RiskCoverage(coverage=curve["x"], risk=curve["y"]),
        # For the report: the score's histogram for correct and wrong predictions.
        score_histogram=score_histogram(
            params.score, [("", {"correct": uncertainty[correct], "wrong": uncertainty[~correct]})]
        ),
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
    details=SelectiveDetails,
    decides=("accuracy_at_coverage", "aurc"),
    validity="robustness_checks.validity.ranking:selective_cases",
    gate_cases="robustness_checks.validity.gates:selective_cases",
    random_model="uncertainty and correctness come from one draw per example (MC-dropout "
    "samples are the sampler's, not the model's randomness); the interval covers examples and "
    "draws",
)
