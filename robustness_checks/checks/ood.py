"""The `ood` check: how well a score separates out-of-distribution inputs from the test data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.checks.common.scored import ScoredCheck, score_examples
from robustness_checks.checks.common.scoring import ScoreName
from robustness_checks.checks.common.separation import separation
from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import DataSpec, Probability


class OODCheck(ScoredCheck):
    """Parameters of an `ood` check; OOD inputs are the positive class."""

    type: Literal["ood"]
    score: ScoreName = "msp"
    ood_data: DataSpec | None = Field(None, description="the OOD inputs; same forms as data")
    metric: Literal["auroc", "aupr", "fpr95"] = "auroc"
    min: Probability | None = Field(None, description="for auroc / aupr")
    max: Probability | None = Field(None, description="for fpr95")

    @model_validator(mode="after")
    def _bound_direction(self) -> OODCheck:
        if self.metric == "fpr95" and self.min is not None:
            raise ValueError("fpr95 is better when lower: bound it with max, not min")
        if self.metric != "fpr95" and self.max is not None:
            raise ValueError(f"{self.metric} is better when higher: bound it with min, not max")
        return self


def run_ood(context: CheckContext, params: OODCheck) -> CheckResult:
    """Score the test data (negatives) and the OOD data (positives) and compare."""
    ood_examples = context.extra_data.get("ood_data")
    if ood_examples is None:
        raise RobustnessError("the ood check needs ood_data: the out-of-distribution inputs")
    negative, _ = score_examples(context, params, context.examples, "id")
    positive, _ = score_examples(context, params, ood_examples, "ood")
    value, ci, details = separation(
        context, params.metric, negative.numpy(), positive.numpy(), params.bootstrap
    )
    details["score"] = params.score
    return bounded_result(
        context,
        params,
        metric=params.metric,
        value=value,
        ci=ci,
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
    data_fields=("ood_data",),
    docs="uncertainty.md",
)
