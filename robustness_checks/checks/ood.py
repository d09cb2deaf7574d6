"""The `ood` check: how well a score separates out-of-distribution inputs from the test data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.feature_scoring import FeatureSettings, feature_scores
from robustness_checks.checks.common.report_data import confusion_matrix, score_histogram
from robustness_checks.checks.common.scored import ScoredCheck, SeparationDetails, score_examples
from robustness_checks.checks.common.scoring import FeatureScoreName, ScoreName
from robustness_checks.checks.common.separation import (
    METRICS,
    measure_separation,
    separation_details,
    separation_warnings,
)
from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics.intervals import Estimate
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import DataSpec, Probability
from robustness_checks.uncertainty.detectors import FEATURE_SCORES


class OODCheck(ScoredCheck):
    """Parameters of an `ood` check; OOD inputs are the positive class."""

    type: Literal["ood"]
    score: Literal[ScoreName, FeatureScoreName] = "msp"
    ood_data: DataSpec | None = Field(None, description="the OOD inputs; same forms as data")
    fit_data: DataSpec | None = Field(
        None,
        description="in-distribution examples with labels (a training sample) that feature "
        "scores fit their statistics on; same forms as data",
    )
    features: Annotated[str, Field(min_length=1)] | None = Field(
        None,
        description="module path whose output (pooled, flattened) is the feature vector; "
        "default: the input of the last nn.Linear",
    )
    k: Annotated[int, Field(ge=1)] = Field(
        50, description="knn: the neighbour whose distance counts"
    )
    percentile: Annotated[float, Field(gt=0.0, lt=100.0)] | None = Field(
        None,
        description="react: clip at this percentile of fit features (default 90); "
        "ash: share of features pruned (default 65)",
    )
    vim_dim: Annotated[int, Field(ge=1)] | None = Field(
        None, description="vim: principal subspace dimension (default by feature size)"
    )
    metric: Literal["auroc", "aupr", "fpr95"] = "auroc"
    min: Probability | None = Field(None, description="for auroc / aupr")
    max: Probability | None = Field(None, description="for fpr95")

    @model_validator(mode="after")
    def _bound_direction(self) -> OODCheck:
        if self.metric == "fpr95" and self.min is not None:
            raise ValueError("fpr95 is better when lower: bound it with max, not min")
        if self.metric != "fpr95" and self.max is not None:
            raise ValueError(f"{self.metric} is better when higher: bound it with min, not max")
        feature_score = self.score in FEATURE_SCORES
        if self.features is not None and not feature_score:
            raise ValueError(
                f"features is read only by the feature scores ({', '.join(FEATURE_SCORES)}); "
                f"{self.score} uses the logits"
            )
        if feature_score and self.uncertainty.method != "softmax":
            raise ValueError(
                f"the {self.score} score reads one forward pass: leave uncertainty out "
                "(method softmax)"
            )
        return self


def measure_ood(
    in_distribution: np.ndarray,
    ood: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
    metrics: Sequence[str] = METRICS,
) -> dict[str, Estimate]:
    """auroc, aupr and fpr95 (those in `metrics`) of the scores, OOD the positive class, with
    intervals; the two samples are drawn separately, so the bootstrap resamples each on its
    own."""
    return measure_separation(
        in_distribution,
        ood,
        resamples=resamples,
        confidence=confidence,
        rng=rng,
        stratified=True,
        metrics=metrics,
    )


class OODDetails(SeparationDetails):
    """Details of an `ood` result; gated: AUROC, AUPR and FPR95. Feature scores add the
    detector's settings."""

    aupr: float | None = None
    features: str | None = None
    feature_size: int | None = None
    fit_examples: int | None = None
    fit_cached: bool | None = None
    fit_classes: int | None = None
    vim_dim: int | None = None
    threshold: float | None = None


def run_ood(context: CheckContext, params: OODCheck) -> CheckResult:
    """Score the test data (negatives) and the OOD data (positives) and compare."""
    ood_examples = context.extra_data.get("ood_data")
    if ood_examples is None:
        raise RobustnessError("the ood check needs ood_data: the out-of-distribution inputs")
    extra: dict = {}
    predictions = None
    if params.score in FEATURE_SCORES:
        settings = FeatureSettings(
            params.score,
            params.features,
            params.k,
            params.percentile,
            params.vim_dim,
            params.temperature,
        )
        scored = feature_scores(context, settings, {"id": context.examples, "ood": ood_examples})
        negative, positive = scored["id"].scores, scored["ood"].scores
        extra = scored["id"].details
    else:
        negative, predictions = score_examples(context, params, context.examples, "id")
        positive, _ = score_examples(context, params, ood_examples, "ood")
    estimates = measure_ood(
        negative.numpy(),
        positive.numpy(),
        resamples=params.bootstrap,
        confidence=context.confidence,
        rng=context.numpy_rng("bootstrap"),
    )
    context.warnings.extend(
        separation_warnings(
            estimates,
            len(negative),
            len(positive),
            score=params.score,
            negative_name="in-distribution inputs",
            positive_name="OOD inputs",
        )
    )
    labels = context.examples.y.numpy()
    matrix = None
    if predictions is not None and len(predictions) == len(labels) and labels.min() >= 0:
        # The in-distribution part is classified as a whole: its confusion matrix.
        classes = int(max(int(predictions.max()), int(labels.max())) + 1)
        matrix = confusion_matrix(labels, predictions.cpu().numpy(), classes)
    details = OODDetails(
        score=params.score,
        **separation_details(estimates, negative.numpy(), positive.numpy()),
        **extra,
        # The report draws the score's distribution on in- and out-of-distribution inputs.
        score_histogram=score_histogram(
            params.score, [("", {"in-distribution": negative.numpy(), "OOD": positive.numpy()})]
        ),
        confusion_matrix=matrix,
    )
    return bounded_result(
        context,
        params,
        metric=params.metric,
        value=estimates[params.metric].value,
        ci=estimates[params.metric].interval,
        maximum=params.max,
        minimum=params.min,
        examples=len(negative) + len(positive),
        details=details,
        condition=f"of {params.score} for {len(positive)} OOD against {len(negative)} "
        "in-distribution inputs",
    )


CHECK = CheckType(
    name="ood",
    params=OODCheck,
    run=run_ood,
    summary="AUROC, AUPR or FPR at 95% TPR of a score at detecting out-of-distribution inputs",
    metrics={"auroc": "higher", "aupr": "higher", "fpr95": "lower"},
    plot="robustness_checks.reporting.plots:roc",
    data_fields=("ood_data", "fit_data"),
    docs="ood.md",
    details=OODDetails,
    validity="robustness_checks.validity.ranking:ood_cases",
    gate_cases="robustness_checks.validity.gates:ood_cases",
    random_model="scores come from one draw per input, those of the random model as deployed; "
    "the interval covers inputs and draws",
)
