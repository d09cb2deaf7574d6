"""Shared fields and helpers of checks that rank examples by an uncertainty score."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from robustness_checks.checks.common.scoring import (
    ScoreName,
    ScoreOptions,
    UncertaintySpec,
    scores_and_predictions,
)
from robustness_checks.examples import Examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.spec.schema import CheckSpec, DataSpec

CURVE_POINTS = 200


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
        int, Field(ge=0, le=100_000, description="bootstrap resamples; 0: none")
    ] = 1000

    def score_options(self) -> ScoreOptions:
        return ScoreOptions(temperature=self.temperature, epsilon=self.epsilon)


def thinned(x: np.ndarray, y: np.ndarray, points: int = CURVE_POINTS) -> dict[str, list[float]]:
    """At most `points` points of a curve, for reports."""
    if len(x) > points:
        keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
        x, y = x[keep], y[keep]
    return {"x": [float(v) for v in x], "y": [float(v) for v in y]}


def score_examples(
    context: CheckContext, params: ScoredCheck, examples: Examples, key: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, predictions) of `examples` with the check's score and uncertainty settings."""
    return scores_and_predictions(
        context, examples, params.score, params.uncertainty, params.score_options(), key
    )
