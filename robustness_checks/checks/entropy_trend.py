"""The `entropy_trend` check: uncertainty rises (or falls) as the perturbation strength grows."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.attack_spec import AttackSpec
from robustness_checks.checks.common.bounds import check_perturbation_bounds
from robustness_checks.checks.common.decision import Judging
from robustness_checks.checks.common.report_data import score_histogram
from robustness_checks.checks.common.scoring import UncertaintySpec, probabilities
from robustness_checks.details import GatedValue, Strict, metric_value
from robustness_checks.execution.context import CheckContext
from robustness_checks.results import CheckResult, Outcome, format_number
from robustness_checks.spec.numbers import KeptNumber, NonNegativeNumber
from robustness_checks.spec.schema import CheckSpec, DataSpec

Measure = Literal[
    "predictive_entropy", "expected_entropy", "mutual_information", "variation_ratio", "confidence"
]


class TrendAttackSpec(AttackSpec):
    """The `attack` block of an entropy_trend check: the one-step and PGD attacks and the random
    baselines (apgd, square and auto, long searches for the worst case, are adversarial's)."""

    method: Literal["fgsm", "pgd", "uniform", "gaussian"] = "pgd"

    @field_validator("method", mode="before")
    @classmethod
    def _not_a_search(cls, method: Any) -> Any:
        allowed = typing.get_args(cls.model_fields["method"].annotation)
        every = typing.get_args(AttackSpec.model_fields["method"].annotation)
        if isinstance(method, str) and method in every and method not in allowed:
            raise ValueError(
                f"method {method!r} is not available in entropy_trend checks: it searches for "
                "the worst case at every eps, which takes minutes (use it in an adversarial "
                f"check); choose one of {', '.join(allowed)}"
            )
        return method


class EntropyTrendCheck(CheckSpec):
    """Parameters of an `entropy_trend` check."""

    type: Literal["entropy_trend"]
    attack: TrendAttackSpec = Field(default_factory=lambda: TrendAttackSpec(method="fgsm"))
    eps: list[NonNegativeNumber] = Field(
        min_length=2, description="increasing perturbation sizes (8/255 too)"
    )
    uncertainty: UncertaintySpec = Field(default_factory=UncertaintySpec)
    fit_data: DataSpec | None = Field(
        None,
        description="in-distribution examples (a training sample) that uncertainty method "
        "laplace fits its last-layer posterior on; same forms as data",
    )
    metric: Measure = "predictive_entropy"
    expect: Literal["increasing", "decreasing"] = "increasing"
    tolerance: Annotated[float, Field(ge=0.0)] = Field(
        0.0, description="largest allowed step of the mean against the expected direction"
    )

    @model_validator(mode="after")
    def _eps_in_order(self) -> EntropyTrendCheck:
        if any(b <= a for a, b in zip(self.eps, self.eps[1:], strict=False)):
            raise ValueError(f"eps must be strictly increasing, got {self.eps}")
        if self.attack.eps is not None:
            raise ValueError("give the eps list at the check's top level, not inside attack")
        return self


class EntropyTrendDetails(Strict):
    """Details of an `entropy_trend` result: the measure's mean per eps and the trend test."""

    eps: list[KeptNumber]
    measure: str
    expect: str
    mean: list[float]
    mean_ci: list[tuple[float, float]]
    accuracy: list[float]
    test: str
    statistic: float
    p_value: float
    opposite_p_value: float
    tolerance: float
    attack: dict[str, Any]
    uncertainty: dict[str, Any]
    mean_rise: float | None = None
    mean_rise_ci: tuple[float, float] | None = None

    def breakdown(self, result: Any) -> list[GatedValue]:
        """Besides the trend test's p-value: the mean rise of the measure from the smallest to
        the largest eps in the expected direction, with its t interval."""
        if self.mean_rise is None:
            return []
        return [metric_value(result, "mean_rise", self.mean_rise, self.mean_rise_ci)]


def run_entropy_trend(context: CheckContext, params: EntropyTrendCheck) -> CheckResult:
    """Perturb at every eps, measure per input, test the trend paired by input."""
    from robustness_checks.attacks import run_attack
    from robustness_checks.uncertainty.samplers import MEASURES

    measure = MEASURES[params.metric]
    check_perturbation_bounds(context, params)
    spec = params.attack.for_model(context.random_model or params.attack.treats_as_random())
    options = spec.run_options()
    if spec.eot is not None:
        options["draws"] = 1  # points only: their uncertainty is measured below

    def perturb_and_measure(
        indices: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        attacked = run_attack(
            context.model,
            x,
            y,
            eps=list(params.eps),
            bounds=context.bounds,
            generator=context.example_stream("attack", indices),
            **options,
        )
        values, correct = [], []
        for index in range(len(params.eps)):
            samples = probabilities(
                context, attacked.adversarial[index], params.uncertainty, (int(indices[0]), index)
            )
            values.append(measure(samples).double())
            correct.append(samples.mean(dim=0).argmax(dim=1) == y)
        return {"values": torch.stack(values, dim=1), "correct": torch.stack(correct, dim=1)}

    out = context.map_examples(perturb_and_measure)
    # (inputs, eps) each
    return decide_trend(context.judging, params, out["values"].numpy(), out["correct"].numpy())


def decide_trend(
    judging: Judging, params: EntropyTrendCheck, values: np.ndarray, correct: np.ndarray
) -> CheckResult:
    from scipy import stats

    n = values.shape[0]
    alpha = 1.0 - judging.confidence
    ordered = values if params.expect == "increasing" else values[:, ::-1]
    test_name, statistic, p_value = trend_test(ordered)
    means = values.mean(axis=0)
    t = stats.t.ppf(1 - alpha / 2, max(n - 1, 1))
    half = t * values.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(means)
    steps = np.diff(means) if params.expect == "increasing" else -np.diff(means)
    rise, rise_ci = mean_rise(ordered, judging.confidence)
    backwards = [i for i, step in enumerate(steps) if step < -params.tolerance]
    trend_ok = p_value <= alpha
    passed = bool(trend_ok and not backwards)
    outcome: Outcome = "passed" if passed else "failed"
    opposite_p = trend_test(ordered[:, ::-1])[2]
    if judging.decision != "point" and not passed:
        # With a rule: failed only when the opposite trend is significant; otherwise the data
        # do not settle it (strict fails such a check, lenient passes it with a warning).
        outcome = "failed" if opposite_p <= alpha else "inconclusive"
    eps_text = ", ".join(format_number(e) for e in params.eps)
    means_text = ", ".join(format_number(m) for m in means)
    if passed:
        verdict = "rises with eps" if params.expect == "increasing" else "falls with eps"
    elif backwards:
        i = backwards[0]
        direction = "falls" if params.expect == "increasing" else "rises"
        verdict = (
            f"{direction} from {format_number(means[i])} at eps={format_number(params.eps[i])}"
            f" to {format_number(means[i + 1])} at eps={format_number(params.eps[i + 1])}"
            f", against the expected {params.expect} trend"
        )
    else:
        verdict = f"shows no significant {params.expect} trend"
    details = EntropyTrendDetails(
        eps=list(params.eps),
        measure=params.metric,
        expect=params.expect,
        mean=[float(m) for m in means],
        mean_ci=[(float(m - h), float(m + h)) for m, h in zip(means, half, strict=True)],
        accuracy=[float(a) for a in correct.mean(axis=0)],
        test=test_name,
        statistic=statistic,
        p_value=p_value,
        opposite_p_value=opposite_p,
        tolerance=params.tolerance,
        attack=params.attack.describe(),
        uncertainty=params.uncertainty.model_dump(),
        mean_rise=rise,
        mean_rise_ci=rise_ci,
        # For the report: the measure's histogram for correct and wrong predictions per eps.
        score_histogram=score_histogram(
            params.metric,
            [
                (f"eps {e:g}", {"correct": column[right], "wrong": column[~right]})
                for e, column, right in zip(
                    params.eps, values.T, correct.T.astype(bool), strict=True
                )
            ],
        ),
    )
    statement = (
        f"{params.metric} {verdict} (means {means_text} at eps {eps_text}; {test_name} "
        f"p = {format_number(p_value)}, needs <= {format_number(alpha)}; "
        f"{params.attack.label()}, {params.uncertainty.method})"
    )
    if outcome == "inconclusive":
        statement += (
            f"; inconclusive under decision {judging.decision}: neither this trend nor the "
            f"opposite one is significant (opposite p = {format_number(opposite_p)}); more "
            "inputs would settle it"
        )
    warnings = [statement] if outcome == "inconclusive" and judging.decision == "lenient" else []
    return CheckResult(
        check=params.name,
        type=params.type,
        metric="trend_p_value",
        value=p_value,
        comparison="<=",
        threshold=alpha,
        confidence=judging.confidence,
        outcome=outcome,
        decision=judging.decision,
        warnings=warnings,
        examples=n,
        details=details,
        statement=statement,
    )


def mean_rise(
    ordered: np.ndarray, confidence: float
) -> tuple[float | None, tuple[float, float] | None]:
    """Mean of the last column minus the first (the rise in the expected direction), paired by
    input, with a t interval at `confidence`; no interval with fewer than two inputs."""
    from scipy import stats

    differences = ordered[:, -1] - ordered[:, 0]
    n = len(differences)
    if n == 0:
        return None, None
    value = float(differences.mean())
    if n < 2:
        return value, None
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * differences.std(ddof=1) / np.sqrt(n))
    return value, (value - half, value + half)


def trend_test(ordered: np.ndarray) -> tuple[str, float, float]:
    """One-sided rank test that values rise along the columns, paired by row (input).

    Three or more levels: Page's L test. Two levels: the Wilcoxon signed-rank test of the
    differences. Values that never change give p = 1.
    """
    from scipy import stats

    differences = np.diff(ordered, axis=1)
    if ordered.shape[0] < 2 or not np.any(differences):
        return "no variation", 0.0, 1.0
    if ordered.shape[1] >= 3:
        page = stats.page_trend_test(ordered)
        return "Page's trend test", float(page.statistic), float(page.pvalue)
    wilcoxon = stats.wilcoxon(differences[:, 0], alternative="greater")
    return "Wilcoxon signed-rank test", float(wilcoxon.statistic), float(wilcoxon.pvalue)


CHECK = CheckType(
    name="entropy_trend",
    params=EntropyTrendCheck,
    run=run_entropy_trend,
    summary="uncertainty (entropy, mutual information, ...) rises with attack or noise strength",
    metrics={"trend_p_value": "lower", "mean_rise": "higher"},
    plot="robustness_checks.reporting.plots:measure_against_eps",
    data_fields=("fit_data",),
    docs="uncertainty.md",
    details=EntropyTrendDetails,
    decides=("trend_p_value",),
    validity="robustness_checks.validity.trend:cases",
    gate_cases="robustness_checks.validity.gates:entropy_trend_cases",
    random_model="attacks average the logits of eot draws per step (expectation over "
    "transformation); the uncertainty at each point comes from one draw per sample",
)
