"""The `calibration` check: ECE, adaptive ECE, MCE, classwise ECE, Brier or NLL below a bound."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch
from pydantic import Field, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.report_data import confusion_matrix
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics import calibration as cal
from robustness_checks.metrics.calibration_bias import (
    calibration_interval,
    ece_debiased,
    smooth_ece,
)
from robustness_checks.metrics.intervals import bootstrap_interval
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec

CalibrationMetric = Literal[
    "ece", "ace", "mce", "classwise_ece", "ece_debiased", "smece", "brier", "nll"
]
_PROBABILITY_SCALE = {"ece", "ace", "mce", "classwise_ece", "ece_debiased", "smece"}
# Binned top-label errors whose interval bounds the true error, not the biased estimate's mean.
_BIAS_AWARE = {"ece", "ace"}


class CalibrationCheck(CheckSpec):
    """Parameters of a `calibration` check."""

    type: Literal["calibration"]
    metric: CalibrationMetric = "ece"
    bins: Annotated[int, Field(ge=1, le=10_000, description="number of bins")] = 15
    max: Annotated[float, Field(ge=0.0)] | None = Field(None, description="upper bound on metric")
    bootstrap: Annotated[
        int, Field(ge=0, le=100_000, description="bootstrap resamples; 0: no interval")
    ] = 1000

    @model_validator(mode="after")
    def _bound_in_range(self) -> CalibrationCheck:
        if self.max is not None and self.metric in _PROBABILITY_SCALE and self.max > 1:
            raise ValueError(
                f"max {self.max:g} is outside [0, 1]; {self.metric} is a probability gap"
            )
        if self.max is not None and self.metric == "brier" and self.max > 2:
            raise ValueError(f"max {self.max:g} is outside [0, 2], the range of the Brier score")
        return self


def run_calibration(context: CheckContext, params: CalibrationCheck) -> CheckResult:
    """Measure the metric on every example, with a percentile bootstrap interval."""
    logits = context.logits().double()
    labels = context.examples.y.numpy()
    log_probabilities = torch.log_softmax(logits, dim=1)
    probabilities = log_probabilities.exp().numpy()
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    statistic, samples = _statistic(
        params, probabilities, labels, confidence, correct, log_probabilities
    )
    value = float(statistic(*samples))
    if params.metric in _BIAS_AWARE and params.bootstrap >= 2:
        # Bounds on the population error: the plug-in is biased upwards on finite samples, so
        # a percentile interval of it would fail perfectly calibrated models (docs/decisions.md).
        bounds = calibration_interval(
            confidence,
            correct,
            params.metric,
            confidence_level=context.confidence,
            rng=context.numpy_rng("bootstrap"),
            resamples=params.bootstrap,
            bins=params.bins,
        )
        ci: tuple[float, float] | None = (bounds.low, bounds.high)
        debiased = {"debiased": bounds.statistic, "null_mean": bounds.null_mean}
    else:
        ci = bootstrap_interval(
            statistic,
            samples,
            confidence=context.confidence,
            rng=context.numpy_rng("bootstrap"),
            resamples=params.bootstrap,
        )
        debiased = {}
    details: dict[str, Any] = {
        "accuracy": float(correct.mean()),
        "mean_confidence": float(confidence.mean()),
        "bins": cal.reliability_bins(
            confidence, correct, params.bins, equal_mass=params.metric == "ace"
        ),
        "bin_rule": "equal-mass" if params.metric == "ace" else "equal-width (lo, hi]",
        "interval": "bias-aware (consistency resampling + bootstrap)"
        if debiased
        else "percentile bootstrap",
        **debiased,
        # For the report: counts of (true label, prediction) over every example.
        "confusion_matrix": confusion_matrix(
            labels, probabilities.argmax(axis=1), probabilities.shape[1]
        ),
    }
    return bounded_result(
        context,
        params,
        metric=params.metric,
        value=value,
        ci=ci,
        maximum=params.max,
        examples=len(labels),
        details=details,
    )


def _statistic(
    params: CalibrationCheck,
    probabilities: np.ndarray,
    labels: np.ndarray,
    confidence: np.ndarray,
    correct: np.ndarray,
    log_probabilities: torch.Tensor,
) -> tuple[Any, list[np.ndarray]]:
    bins = params.bins
    if params.metric == "ece":
        return (lambda c, k: cal.expected_calibration_error(c, k, bins)), [confidence, correct]
    if params.metric == "ace":
        return (lambda c, k: cal.adaptive_calibration_error(c, k, bins)), [confidence, correct]
    if params.metric == "ece_debiased":
        return (lambda c, k: ece_debiased(c, k, bins)), [confidence, correct]
    if params.metric == "smece":
        return smooth_ece, [confidence, correct]
    if params.metric == "mce":
        return (lambda c, k: cal.maximum_calibration_error(c, k, bins)), [confidence, correct]
    if params.metric == "classwise_ece":
        return (
            (lambda p, y: cal.classwise_calibration_error(p, y, bins)),
            [probabilities.T.copy(), labels],
        )
    if params.metric == "brier":
        per_example = ((probabilities - np.eye(probabilities.shape[1])[labels]) ** 2).sum(axis=1)
        return (lambda v: v.mean(axis=-1)), [per_example]
    label_log_probability = log_probabilities.gather(1, torch.as_tensor(labels)[:, None])
    return cal.negative_log_likelihood, [label_log_probability.squeeze(1).numpy()]


CHECK = CheckType(
    name="calibration",
    params=CalibrationCheck,
    run=run_calibration,
    summary="ECE (plug-in, adaptive, max, classwise, debiased, smooth), Brier or NLL under a bound",
    metrics={metric: "lower" for metric in get_args(CalibrationMetric)},
    plot="robustness_checks.reporting.plots:reliability_diagram",
    docs="calibration.md",
)
