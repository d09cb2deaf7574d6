"""The `calibration` check: ECE, adaptive ECE, MCE, classwise ECE, Brier or NLL below a bound."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal, get_args

import numpy as np
import torch
from numpy.random import Generator
from pydantic import Field, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.report_data import confusion_matrix
from robustness_checks.details import Block, Strict
from robustness_checks.errors import InsufficientData
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics import calibration as cal
from robustness_checks.metrics import calibration_bounds as bounds_
from robustness_checks.metrics import calibration_intervals as ci_
from robustness_checks.metrics.calibration_bias import ece_debiased, smooth_ece
from robustness_checks.metrics.smooth_interval import smooth_interval
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec

CalibrationMetric = Literal[
    "ece", "ace", "mce", "classwise_ece", "ece_debiased", "smece", "brier", "nll"
]
_PROBABILITY_SCALE = {"ece", "ace", "mce", "classwise_ece", "ece_debiased", "smece"}


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
        if self.bootstrap == 1:
            raise ValueError("bootstrap 1 cannot make an interval: use 0 (none) or at least 2")
        return self


@dataclass(frozen=True)
class CalibrationMeasurement:
    """A calibration metric's value, its interval on the population value (None: none asked
    for), how the interval was made and metric-specific details."""

    value: float
    ci: tuple[float, float] | None
    interval: str
    extra: dict[str, float] = field(default_factory=dict)


_INTERVALS = {
    "ece": "bias-aware: global gap and moment selection below, bootstrap of the plug-in above",
    "ace": "bias-aware: global gap and moment selection below, bootstrap of the plug-in above",
    "mce": "per-bin Clopper-Pearson (Bonferroni below) and global gap",
    "classwise_ece": "bias-aware: threshold gaps and moment selection below, bootstrap above",
    "ece_debiased": "global gap and bootstrap of the debiased square below, plug-in above",
    "smece": "bias-aware bounds at fixed bandwidth, inverted at the fixed point",
    "brier": "Student t",
    "nll": "Student t",
}


def measure_calibration(
    params: CalibrationCheck,
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    confidence: float,
    rng: np.random.Generator,
    log_probabilities: np.ndarray | None = None,
) -> CalibrationMeasurement:
    """The metric of `params` on (n, classes) probabilities and labels, with its interval at
    `confidence` on the population value (docs/calibration.md). Raises InsufficientData with
    fewer than two examples when an interval is asked for."""
    count = len(labels)
    if count == 0 or (params.bootstrap > 0 and count < 2):
        raise InsufficientData(
            f"{params.metric} needs at least 2 examples for an interval, got {count} "
            "(set bootstrap: 0 to measure the point value alone)"
        )
    if log_probabilities is None:
        with np.errstate(divide="ignore"):
            log_probabilities = np.log(probabilities)
    data = _Data(probabilities, labels, log_probabilities)
    value, bounds, extra = _MEASURES[params.metric](params, data, confidence, rng)
    ci = None
    if bounds is not None:  # widened to hold the estimate, cut to the metric's range
        top = _TOP.get(params.metric, 1.0)
        ci = (max(min(bounds[0], value), 0.0), min(max(bounds[1], value), top))
    return CalibrationMeasurement(value, ci, _INTERVALS[params.metric], extra)


class BinRow(Block):
    """One non-empty bin of the reliability diagram: its edges, size, mean confidence and
    accuracy."""

    lo: float
    hi: float
    count: int
    confidence: float
    accuracy: float


class CalibrationDetails(Strict):
    """Details of a `calibration` result; gated: its metric."""

    accuracy: float
    mean_confidence: float
    bins: list[BinRow]
    bin_rule: str
    interval: str
    debiased: float | None = None
    null_mean: float | None = None


def run_calibration(context: CheckContext, params: CalibrationCheck) -> CheckResult:
    """Measure the metric on every example, with an interval on its population value."""
    logits = context.logits().double()
    labels = context.examples.y.numpy()
    log_probabilities = torch.log_softmax(logits, dim=1).numpy()
    probabilities = np.exp(log_probabilities)
    measured = measure_calibration(
        params,
        probabilities,
        labels,
        confidence=context.confidence,
        rng=context.numpy_rng("bootstrap"),
        log_probabilities=log_probabilities,
    )
    confidence = probabilities.max(axis=1)
    predicted = probabilities.argmax(axis=1)
    correct = (predicted == labels).astype(np.float64)
    details = CalibrationDetails(
        accuracy=float(correct.mean()),
        mean_confidence=float(confidence.mean()),
        bins=cal.reliability_bins(
            confidence, correct, params.bins, equal_mass=params.metric == "ace"
        ),
        bin_rule="equal-mass" if params.metric == "ace" else "equal-width (lo, hi]",
        interval=measured.interval,
        **measured.extra,
        # For the report: counts of (true label, prediction) over every example.
        confusion_matrix=confusion_matrix(labels, predicted, probabilities.shape[1]),
    )
    return bounded_result(
        context,
        params,
        metric=params.metric,
        value=measured.value,
        ci=measured.ci,
        maximum=params.max,
        examples=len(labels),
        details=details,
    )


Bounds = tuple[float, float]
Measured = tuple[float, Bounds | None, dict[str, float]]  # value, bounds, extra details


@dataclass(frozen=True)
class _Data:
    """The examples a metric is measured on."""

    probabilities: np.ndarray  # (n, classes)
    labels: np.ndarray  # (n,)
    log_probabilities: np.ndarray  # (n, classes)

    @property
    def confidence(self) -> np.ndarray:
        """Top-label confidence of each example."""
        return self.probabilities.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        """Whether each top label is right, as 0.0 or 1.0."""
        return (self.probabilities.argmax(axis=1) == self.labels).astype(np.float64)


def _binned(params: CalibrationCheck, data: _Data, level: float, rng: Generator) -> Measured:
    """ece and ace: the plug-in, and bounds on the population error."""
    confidence, correct = data.confidence, data.correct
    equal_mass = params.metric == "ace"
    metric = cal.adaptive_calibration_error if equal_mass else cal.expected_calibration_error
    value = float(metric(confidence, correct, params.bins))
    if params.bootstrap == 0:
        return value, None, {}
    bounds = ci_.binned_interval(
        confidence,
        correct,
        bins=params.bins,
        equal_mass=equal_mass,
        confidence_level=level,
        rng=rng,
        resamples=params.bootstrap,
    )
    extra = {"debiased": max(value - bounds.null_mean, 0.0), "null_mean": bounds.null_mean}
    return value, (bounds.low, bounds.high), extra


def _max_gap(params: CalibrationCheck, data: _Data, level: float, rng: Generator) -> Measured:
    """mce: the plug-in and per-bin bounds (no resampling)."""
    confidence, correct = data.confidence, data.correct
    value = float(cal.maximum_calibration_error(confidence, correct, params.bins))
    if params.bootstrap == 0:
        return value, None, {}
    classes = data.probabilities.shape[1]
    bounds = ci_.max_gap_interval(
        confidence, correct, bins=params.bins, classes=classes, confidence_level=level
    )
    return value, bounds, {}


def _classwise(params: CalibrationCheck, data: _Data, level: float, rng: Generator) -> Measured:
    """classwise_ece: the plug-in and bounds on the population error."""
    probabilities, labels = data.probabilities, data.labels
    value = float(cal.classwise_calibration_error(probabilities.T, labels, params.bins))
    if params.bootstrap == 0:
        return value, None, {}
    bounds = ci_.classwise_interval(
        probabilities,
        labels,
        bins=params.bins,
        confidence_level=level,
        rng=rng,
        resamples=params.bootstrap,
    )
    return value, bounds, {}


def _debiased(params: CalibrationCheck, data: _Data, level: float, rng: Generator) -> Measured:
    """ece_debiased: Kumar et al.'s estimate and bounds on the population L2 error."""
    confidence, correct = data.confidence, data.correct
    value = float(ece_debiased(confidence, correct, params.bins))
    if params.bootstrap == 0:
        return value, None, {}
    bounds = ci_.l2_interval(
        confidence,
        correct,
        bins=params.bins,
        confidence_level=level,
        rng=rng,
        resamples=params.bootstrap,
    )
    return value, bounds, {}


def _smooth(params: CalibrationCheck, data: _Data, level: float, rng: Generator) -> Measured:
    """smece: relplot's smooth ECE and bounds on the population fixed point."""
    confidence, correct = data.confidence, data.correct
    value = float(smooth_ece(confidence, correct))
    if params.bootstrap == 0:
        return value, None, {}
    bounds = smooth_interval(
        confidence,
        correct,
        value=value,
        confidence_level=level,
        rng=rng,
        resamples=params.bootstrap,
    )
    return value, bounds, {}


def _mean_loss(params: CalibrationCheck, data: _Data, losses: np.ndarray, level: float) -> Measured:
    """The mean loss and its t interval; `losses` (n, K) is the loss of every possible label,
    and the loss variance the model itself expects floors the variance."""
    per_example = np.take_along_axis(losses, data.labels[:, None], axis=1)[:, 0]
    value = float(per_example.mean())
    if params.bootstrap == 0 or not math.isfinite(value):  # a label of probability 0: nll inf
        return value, None, {}
    floor = bounds_.implied_variance(data.probabilities, losses)
    return value, bounds_.mean_interval(per_example, level, floor), {}


def _brier(params: CalibrationCheck, data: _Data, level: float, rng: Generator) -> Measured:
    """brier: mean over examples of sum_k (p_k - [y = k])^2."""
    p = data.probabilities
    losses = (p**2).sum(axis=1, keepdims=True) - 2 * p + 1  # the score if the label were k
    return _mean_loss(params, data, losses, level)


def _nll(params: CalibrationCheck, data: _Data, level: float, rng: Generator) -> Measured:
    """nll: mean of -log p_y."""
    return _mean_loss(params, data, -data.log_probabilities, level)


_MEASURES: dict[str, Callable[[CalibrationCheck, _Data, float, Generator], Measured]] = {
    "ece": _binned,
    "ace": _binned,
    "mce": _max_gap,
    "classwise_ece": _classwise,
    "ece_debiased": _debiased,
    "smece": _smooth,
    "brier": _brier,
    "nll": _nll,
}
_TOP = {"brier": 2.0, "nll": math.inf}  # largest value of a metric not in [0, 1]


CHECK = CheckType(
    name="calibration",
    params=CalibrationCheck,
    run=run_calibration,
    summary="ECE (plug-in, adaptive, max, classwise, debiased, smooth), Brier or NLL under a bound",
    metrics={metric: "lower" for metric in get_args(CalibrationMetric)},
    plot="robustness_checks.reporting.plots:reliability_diagram",
    docs="calibration.md",
    details=CalibrationDetails,
    validity="robustness_checks.validity.calibration:cases",
    gate_cases="robustness_checks.validity.gates:calibration_cases",
    random_model="each example's confidence and correctness come from one draw, so the "
    "calibration error is that of the random model as deployed: every (example, draw) pair is "
    "one sample of it and the interval covers both",
)
