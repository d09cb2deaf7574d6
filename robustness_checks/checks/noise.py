"""The `noise` check: P(misclassified under Gaussian noise) per input, estimated to a relative
error, at most a bound."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import check_inside_bounds
from robustness_checks.checks.common.decision import Judging
from robustness_checks.checks.common.inputs import SelectsInputs, selected_inputs
from robustness_checks.details import Block, GatedValue, Strict, metric_value
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.distributed import agree_on_failure, gather_objects
from robustness_checks.execution.seeding import derive_seed, seeded_torch
from robustness_checks.failure_probability.bound_test import draws_to_settle_below
from robustness_checks.failure_probability.estimate import BOUND_TEST_SHARE, DEFAULT_ESTIMATOR
from robustness_checks.results import CheckResult, Outcome, format_number
from robustness_checks.spec.numbers import KeptNumber, PositiveNumber

# An input with a larger share of draws at which the model returned NaN or infinite logits
# (or a share larger than max_probability) cannot pass: those draws have no prediction.
NONFINITE_SHARE = 0.01


class NoiseCheck(SelectsInputs):
    """Parameters of a `noise` check."""

    default_inputs: ClassVar[int] = 10

    type: Literal["noise"]
    sigma: PositiveNumber = Field(description="noise standard deviation (raw inputs; 8/255 too)")
    estimator: Literal["importance", "splitting", "mc"] = DEFAULT_ESTIMATOR
    relative_error: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    max_evaluations: Annotated[int, Field(ge=100, le=10**10, description="budget per input")] = (
        20000
    )
    max_probability: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    clip: bool = Field(False, description="clip noisy inputs to the spec's bounds")
    settle_at_bound: bool = Field(
        True,
        description="with max_probability: decide each input by an anytime-valid Monte Carlo "
        "test at the bound when half the budget affords it, before resolving p with the "
        "estimator",
    )
    batch_size: Annotated[int, Field(ge=1, le=1 << 20)] = 1024


class HistoryPoint(Block):
    """One point of an estimate's convergence trace."""

    evaluations: int
    probability: float
    ci_low: float
    ci_high: float
    relative_error: float | None = None
    ess: float | None = None  # importance sampling's effective sample size


class InputRow(Block):
    """One input's estimated probability of misclassification under noise, and its verdict."""

    index: int
    label: int
    estimator: str | None = None  # mc-at-bound when the test at the bound decided
    probability: float
    log10_probability: float | None
    relative_error: float | None
    ci: tuple[float, float]
    evaluations: int
    ess: float | None = None
    converged: bool
    unreliable: list[str] = Field(default_factory=list)
    tail_allowance: float = 0.0
    nonfinite: int = 0
    draws: int = 0
    outcome: str
    nonfinite_inconclusive: bool = False
    history: list[HistoryPoint] = Field(default_factory=list)


class NoiseDetails(Strict):
    """Details of a `noise` result; gated: the worst probability and each input's."""

    sigma: KeptNumber
    estimator: str
    relative_error_target: float
    input_confidence: float
    decision_rule: str
    inputs: list[InputRow]

    def breakdown(self, result: Any) -> list[GatedValue]:
        return [
            metric_value(result, "probability", row.probability, row.ci, input=row.index)
            for row in self.inputs
        ]


def run_noise(context: CheckContext, params: NoiseCheck) -> CheckResult:
    """Estimate each selected input's failure probability and apply the decision rule."""
    from robustness_checks.failure_probability import estimate_failure_probability
    from robustness_checks.failure_probability.estimate import settle_against_bound

    if params.clip:
        check_inside_bounds(context)
    chosen = selected_inputs(context, params)
    if context.random_model and params.estimator == "splitting":
        context.warnings.append(SPLITTING_ON_RANDOM_MODEL)
    world = context.world
    rows, failure = [], None
    try:
        # Each process estimates its own block of inputs; every input has its own generator,
        # so the estimates are those of a single process.
        for index in [chosen[i] for i in world.shard(len(chosen))]:
            label = int(context.examples.y[index])
            seed = derive_seed(context.seed, context.check_name, "model", index)
            common = {
                "sigma": params.sigma,
                "estimator": params.estimator,
                "relative_error": params.relative_error,
                "max_evaluations": params.max_evaluations,
                "bounds": context.bounds if params.clip else None,
                "batch_size": params.batch_size,
                "generator": context.generator("noise", index),
            }
            x = context.examples.x[index].to(context.device)
            level = input_level(context.confidence, len(chosen))
            with seeded_torch(seed, context.device):
                if params.max_probability is not None and params.settle_at_bound:
                    estimate = settle_against_bound(
                        context.model,
                        x,
                        label,
                        bound=params.max_probability,
                        error=1.0 - level,
                        **common,
                    )
                else:
                    estimate = estimate_failure_probability(
                        context.model, x, label, confidence=level, **common
                    )
            rows.append(input_row(index, label, estimate, params.max_probability, context.decision))
    except Exception as error:
        failure = error
    agree_on_failure(failure, world)
    return decide_rows(context.judging, params, gather_objects(rows, world))


SPLITTING_ON_RANDOM_MODEL = (
    "estimator splitting assumes a deterministic model: its levels and moves read the model's "
    "score once per point, which a random model redraws at every call, so its estimate is not "
    "one of the probability over noise and draws together. Use estimator: importance or mc"
)


def input_level(confidence: float, inputs: int) -> float:
    """The level of each input's interval, 1 - (1 - c) / inputs: the intervals of all inputs
    then hold together with probability c (Bonferroni), so the check's verdict over all of
    them (fail if any input is over the bound) keeps the error rate of one."""
    return 1.0 - (1.0 - confidence) / max(inputs, 1)


def input_row(
    index: int, label: int, estimate: Any, bound: float | None, decision: str
) -> dict[str, Any]:
    """One input's estimate and its verdict. point: a converged estimate against the bound, or
    the interval when not converged; strict and lenient: the interval alone (an unconverged or
    unreliable estimate has a wide interval, so it is inconclusive unless the interval is
    clear of the bound). An estimate whose diagnostics distrust its own error (see
    `NoiseEstimate.unreliable`) cannot be "within": it is inconclusive instead. Draws with NaN
    or infinite logits are not failures; an input "within" the bound with more of them than
    min(NONFINITE_SHARE, bound) is inconclusive instead."""
    low, high = estimate.ci
    converged = estimate.converged and decision == "point"
    if bound is None:
        outcome = "measured"
    elif (converged and estimate.probability <= bound) or high <= bound:
        outcome = "within"
    elif (converged and estimate.probability > bound) or low > bound:
        outcome = "over"
    else:
        outcome = "inconclusive"
    share = estimate.nonfinite / max(1, estimate.draws)
    undefined = bound is not None and outcome != "over" and share > min(NONFINITE_SHARE, bound)
    # An interval from an error estimate the diagnostics distrust cannot clear the bound.
    distrusted = outcome == "within" and bound is not None and not estimate.reliable
    if undefined or distrusted:
        outcome = "inconclusive"
    return {
        "index": index,
        "label": label,
        "estimator": estimate.estimator,
        "probability": estimate.probability,
        "log10_probability": estimate.log10_probability,
        "relative_error": estimate.relative_error,
        "ci": (low, high),
        "evaluations": estimate.evaluations,
        "ess": estimate.ess,
        "converged": estimate.converged,
        "unreliable": estimate.unreliable,
        # Share by which importance sampling raised the upper limit for its heavy weight tail.
        "tail_allowance": estimate.details.get("tail_allowance", 0.0),
        "nonfinite": estimate.nonfinite,
        "draws": estimate.draws,
        "outcome": outcome,
        "nonfinite_inconclusive": undefined,
        "history": [HistoryPoint(**point) for point in estimate.history],
    }


def _describe(row: dict[str, Any], level: str) -> str:
    low, high = row["ci"]
    return (
        f"input {row['index']}: p = {format_number(row['probability'])} ({level} CI "
        f"{format_number(low)} to {format_number(high)}, relative error "
        f"{format_number(row['relative_error'])} after {row['evaluations']:,} evaluations)"
    )


def settle_hint(row: dict[str, Any], bound: float, error: float) -> str:
    """What would settle an inconclusive input: the Monte Carlo draws the test at the bound
    needs at this input's p, or an estimator that resolves p below the bound."""
    p = max(row["probability"], 1e-300)
    if p < bound:
        needed = draws_to_settle_below(p, bound, BOUND_TEST_SHARE * error)
        if needed is not None and needed < 10**9:
            return (
                f"at p = {format_number(p)} the Monte Carlo test at the bound needs about "
                f"{needed:,} draws: max_evaluations: {2 * needed:,} would settle it"
            )
    return (
        "p is too close to the bound for Monte Carlo: estimator: importance or splitting with "
        "a smaller relative_error and more max_evaluations would resolve it"
    )


def verdict(rows: list[dict[str, Any]]) -> Outcome:
    """The check's outcome from its inputs' verdicts: failed when any input is over the bound,
    else inconclusive when any is, else passed."""
    found = {row["outcome"] for row in rows}
    return "failed" if "over" in found else "inconclusive" if "inconclusive" in found else "passed"


def decide_rows(judging: Judging, params: NoiseCheck, rows: list[dict[str, Any]]) -> CheckResult:
    level = f"{100 * input_level(judging.confidence, len(rows)):.4g}%"
    over = [r for r in rows if r["outcome"] == "over"]
    unsure = [r for r in rows if r["outcome"] == "inconclusive"]
    worst = max(rows, key=lambda r: (r["probability"], r["ci"][1]))
    deciding = worst  # the input whose value and interval the summary row shows
    used = dict.fromkeys(r.get("estimator") or params.estimator for r in rows)
    setting = f"sigma {format_number(params.sigma)}, {', '.join(used)}"
    bound = params.max_probability
    if bound is None:
        statement = f"largest {_describe(worst, level)} [{setting}]"
    elif over:
        first = deciding = max(over, key=lambda r: r["probability"])
        statement = (
            f"{_describe(first, level)} is over max_probability {format_number(bound)} "
            f"[{setting}]; {len(over)} of {len(rows)} inputs over the bound, "
            f"{len(unsure)} inconclusive"
        )
    elif any(r["nonfinite_inconclusive"] for r in unsure):
        first = deciding = next(r for r in unsure if r["nonfinite_inconclusive"])
        statement = (
            f"{_describe(first, level)} is inconclusive: the model returned NaN or infinite "
            f"logits at {first['nonfinite']:,} of its {first['draws']:,} noisy draws, more than "
            f"min({NONFINITE_SHARE:g}, max_probability {format_number(bound)}) of them, and "
            f"those draws have no prediction [{setting}]; {len(unsure)} of {len(rows)} inputs "
            "inconclusive"
        )
    elif any(r["unreliable"] for r in unsure):
        first = deciding = next(r for r in unsure if r["unreliable"])
        statement = (
            f"{_describe(first, level)} is inconclusive: its reported error cannot be trusted "
            f"({'; '.join(first['unreliable'])}) [{setting}]; {len(unsure)} of {len(rows)} "
            "inputs inconclusive; more max_evaluations or estimator: splitting may settle it"
        )
    elif unsure:
        first = deciding = unsure[0]
        statement = (
            f"{_describe(first, level)} is inconclusive: the budget of "
            f"{params.max_evaluations:,} evaluations per input neither reached relative "
            f"error {format_number(params.relative_error)} nor put the interval below "
            f"max_probability {format_number(bound)} [{setting}]; "
            f"{settle_hint(first, bound, 1.0 - input_level(judging.confidence, len(rows)))}; "
            f"{len(unsure)} of "
            f"{len(rows)} inputs inconclusive"
        )
    else:
        statement = (
            f"all {len(rows)} inputs within max_probability {format_number(bound)}; "
            f"largest {_describe(worst, level)} [{setting}]"
        )
    outcome = verdict(rows)
    warnings = [statement] if outcome == "inconclusive" and judging.decision == "lenient" else []
    warnings += _nonfinite_warnings(rows)
    return CheckResult(
        check=params.name,
        type=params.type,
        metric="probability",
        value=float(deciding["probability"]),
        comparison=None if bound is None else "<=",
        threshold=bound,
        ci=(float(deciding["ci"][0]), float(deciding["ci"][1])),
        confidence=judging.confidence,
        outcome=outcome,
        decision=judging.decision,
        warnings=warnings,
        examples=len(rows),
        statement=statement,
        details=NoiseDetails(
            sigma=params.sigma,
            estimator=params.estimator,
            relative_error_target=params.relative_error,
            input_confidence=input_level(judging.confidence, len(rows)),
            decision_rule="point: an input passes when its estimate reached the relative-error "
            "target and is at most the bound, or when its upper confidence limit is at most the "
            "bound; strict/lenient: by its interval alone",
            inputs=[InputRow.model_construct(**row) for row in rows],  # made by input_row
        ),
    )


def _nonfinite_warnings(rows: list[dict[str, Any]]) -> list[str]:
    """A warning counting the noisy draws at which the model returned NaN or infinite logits."""
    hit = [r for r in rows if r["nonfinite"]]
    if not hit:
        return []
    worst = max(hit, key=lambda r: r["nonfinite"] / max(1, r["draws"]))
    total = sum(r["nonfinite"] for r in hit)
    draws = sum(r["draws"] for r in rows)
    undefined = sum(r["nonfinite_inconclusive"] for r in rows)
    message = (
        f"the model returned NaN or infinite logits at {total:,} of {draws:,} noisy draws "
        f"({len(hit)} of {len(rows)} inputs; input {worst['index']}: {worst['nonfinite']:,} of "
        f"{worst['draws']:,}); those draws have no prediction and are not counted as failures, "
        "so each probability is that of a misclassification with finite logits"
    )
    if undefined:
        inputs = "1 input" if undefined == 1 else f"{undefined} inputs"
        message += (
            f"; {inputs} with more than min({NONFINITE_SHARE:g}, max_probability) of their draws "
            f"non-finite {'is' if undefined == 1 else 'are'} inconclusive"
        )
    return [message]


CHECK = CheckType(
    name="noise",
    params=NoiseCheck,
    run=run_noise,
    summary="P(misclassified under Gaussian noise), by importance sampling, splitting or MC",
    metrics={"probability": "lower"},
    plot="robustness_checks.reporting.plots:noise_convergence",
    docs="noise.md",
    details=NoiseDetails,
    decides=("probability",),
    validity="robustness_checks.validity.noise:cases",
    gate_cases="robustness_checks.validity.gates:noise_cases",
    random_model="each noise sample meets its own draw of the model, so the probability "
    "estimated by importance sampling or mc (unbiased) is over the noise and the model's "
    "randomness together; splitting assumes a deterministic model and warns",
    point_inconclusive="an input whose estimate neither reached relative_error nor put its "
    "interval clear of the bound within max_evaluations, whose error its diagnostics distrust, or "
    "with too many NaN draws has no estimate to decide by: it is inconclusive and the item fails",
)
