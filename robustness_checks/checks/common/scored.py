"""Shared fields and helpers of checks that rank examples by an uncertainty score."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from robustness_checks.checks.common.scoring import (
    ScoreName,
    ScoreOptions,
    UncertaintySpec,
    scores_and_predictions,
)
from robustness_checks.details import Block, GatedValue, Strict, metric_value
from robustness_checks.examples import Examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics.intervals import Estimate
from robustness_checks.spec.schema import CheckSpec, DataSpec

CURVE_POINTS = 200
# The BCa bootstrap of a ranking metric is used only with at least this many examples of each
# class (positives and negatives, or errors and correct predictions); below it the checks report
# a conservative interval (tests/test_decision_validity.py measures the error rates).
MIN_PER_CLASS = 10


class ScoredCheck(CheckSpec):
    """A check driven by a per-example score (higher = more uncertain)."""

    score: ScoreName = "confidence"
    uncertainty: UncertaintySpec = Field(default_factory=UncertaintySpec)
    fit_data: DataSpec | None = Field(
        None,
        description="in-distribution examples (a training sample) that uncertainty method "
        "laplace fits its last-layer posterior on; same forms as data",
    )
    temperature: Annotated[float, Field(gt=0.0)] | None = Field(
        None, description="energy / ODIN temperature; default 1 for energy, 1000 for ODIN"
    )
    epsilon: Annotated[float, Field(ge=0.0)] = Field(0.0014, description="ODIN input step")
    bootstrap: Annotated[
        int,
        Field(
            ge=0,
            le=100_000,
            description="bootstrap resamples; 0: the conservative intervals instead",
        ),
    ] = 1000

    def score_options(self) -> ScoreOptions:
        return ScoreOptions(temperature=self.temperature, epsilon=self.epsilon)


class RankedDetails(Strict):
    """Details of a check that ranks examples by a score: its metrics, each with an interval;
    every metric the check type declares is gated."""

    score: str
    intervals: dict[str, tuple[float, float] | None]
    interval_methods: dict[str, str]

    def breakdown(self, result: Any) -> list[GatedValue]:
        return [
            metric_value(result, name, getattr(self, name), interval)
            for name, interval in self.intervals.items()
            if result.lower_is_better(name) is not None and getattr(self, name, None) is not None
        ]


class RocCurve(Block):
    """A ROC curve, thinned for reports."""

    fpr: list[float]
    tpr: list[float]


class SeparationDetails(RankedDetails):
    """Details of a check that separates positives (OOD inputs, errors) from negatives."""

    auroc: float | None = None
    fpr95: float | None = None
    roc: RocCurve
    negatives: int
    positives: int


def thinned(x: np.ndarray, y: np.ndarray, points: int = CURVE_POINTS) -> dict[str, list[float]]:
    """At most `points` points of a curve, for reports."""
    if len(x) > points:
        keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
        x, y = x[keep], y[keep]
    return {"x": [float(v) for v in x], "y": [float(v) for v in y]}


def estimate_details(estimates: dict[str, Estimate]) -> dict[str, Any]:
    """Each metric's value, plus `intervals` and `interval_methods` keyed by metric."""
    return {
        **{name: estimate.value for name, estimate in estimates.items()},
        "intervals": {
            name: None if estimate.interval is None else list(estimate.interval)
            for name, estimate in estimates.items()
        },
        "interval_methods": {name: estimate.method for name, estimate in estimates.items()},
    }


def score_examples(
    context: CheckContext, params: ScoredCheck, examples: Examples, key: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, predictions) of `examples` with the check's score and uncertainty settings."""
    return scores_and_predictions(
        context, examples, params.score, params.uncertainty, params.score_options(), key
    )
