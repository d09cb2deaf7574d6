"""Validity cases: populations whose metric value is known, to measure a decision rule's errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustness_checks.results import Comparison

RULES: tuple[str, ...] = ("point", "strict", "lenient")
SIZES: tuple[int, ...] = (1, 20, 60, 200, 1000)
SEEDS = 200
POWER_SIZE = 1000
POWER = 0.8

# (population value, n, seeds, confidence) -> rule -> whether the pytest item passed, per seed.
Passes = Callable[[float, int, Sequence[int], float], dict[str, np.ndarray]]


@dataclass(frozen=True)
class ValidityCase:
    """One bound of one check type, and a way to decide samples of populations against it.

    `passes(truth, n, seeds, confidence)` draws, for each seed, n examples from a population
    whose metric equals `truth`, runs the check's own statistics and decision code on them
    under every rule of `RULES`, and returns, per rule, whether the pytest item passed (outcome
    passed, or inconclusive under lenient). The harness calls it with `truth = bound` (the
    boundary: a strict pass there is a false pass, a lenient failure a false failure) and with
    `truth = violating`, a population value twice as far from the bound as the bound itself,
    measured on the metric's worse side (2 * bound for an upper bound; 1 - 2 * (1 - bound) for
    a lower bound of a quantity in [0, 1]), which every rule must fail at n = 1000.
    """

    check_type: str
    metric: str
    comparison: Comparison
    bound: float
    violating: float
    passes: Passes
    population: str = ""  # how the population is built, for the table
    sizes: tuple[int, ...] = SIZES
    power_size: int = POWER_SIZE
    # Where strict's false passes are measured: the bound for a metric whose pass probability
    # is continuous there; the nearest violating population for a witness rule (fuzz), whose
    # population at the bound holds the property.
    strict_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.check_type}/{self.metric}"


def limit(confidence: float, seeds: int) -> float:
    """The largest error rate a rule may show over `seeds` draws: (1 - c) plus two binomial
    standard errors at that rate."""
    alpha = 1.0 - confidence
    return alpha + 2.0 * math.sqrt(alpha * (1.0 - alpha) / seeds)


@dataclass(frozen=True)
class Rate:
    """How often one rule let the pytest item pass, at one sample size and population value."""

    case: str
    n: int
    truth: str  # "bound", "beyond" (strict's measure for witness rules) or "violating"
    rule: str
    passed: int
    seeds: int

    @property
    def share(self) -> float:
        return self.passed / self.seeds


def measure(
    case: ValidityCase,
    *,
    seeds: int = SEEDS,
    confidence: float = 0.95,
    sizes: Sequence[int] | None = None,
) -> list[Rate]:
    """Pass counts of every rule at the boundary for each n (strict's at `strict_at` when the
    case gives one), and at the violating value at the case's power size."""
    seed_list = list(range(seeds))
    rates = []
    for n in sizes if sizes is not None else case.sizes:
        passed = case.passes(case.bound, n, seed_list, confidence)
        rates += [Rate(case.key, n, "bound", r, int(np.sum(passed[r])), seeds) for r in RULES]
        if case.strict_at is not None:
            beyond = case.passes(case.strict_at, n, seed_list, confidence)
            rates += [Rate(case.key, n, "beyond", r, int(np.sum(beyond[r])), seeds) for r in RULES]
    violating = case.passes(case.violating, case.power_size, seed_list, confidence)
    rates += [
        Rate(case.key, case.power_size, "violating", r, int(np.sum(violating[r])), seeds)
        for r in RULES
    ]
    return rates


def problems(rates: Sequence[Rate], confidence: float = 0.95) -> list[str]:
    """What breaks the harness's bounds: strict passing a violating population at the boundary
    (or the nearest violation, `beyond`) or lenient failing at the boundary more often than
    `limit`, or any rule passing the violating population in more than 1 - POWER."""
    beyond = {rate.case for rate in rates if rate.truth == "beyond"}
    found = []
    for rate in rates:
        bound = limit(confidence, rate.seeds)
        strict_truth = "beyond" if rate.case in beyond else "bound"
        if rate.truth == strict_truth and rate.rule == "strict" and rate.share > bound:
            found.append(
                f"{rate.case} n={rate.n}: strict passes at the {rate.truth} in {rate.passed} of "
                f"{rate.seeds} seeds (at most {bound:.3f} allowed)"
            )
        if rate.truth == "bound" and rate.rule == "lenient" and 1 - rate.share > bound:
            found.append(
                f"{rate.case} n={rate.n}: lenient fails at the bound in "
                f"{rate.seeds - rate.passed} of {rate.seeds} seeds (at most {bound:.3f} allowed)"
            )
        if rate.truth == "violating" and rate.share > 1 - POWER:
            found.append(
                f"{rate.case} n={rate.n}: {rate.rule} passes the violating population in "
                f"{rate.passed} of {rate.seeds} seeds (power below {POWER:.0%})"
            )
    return found


def violating_value(comparison: Comparison, bound: float) -> float:
    """The population value twice as far from `bound` as the bound itself, on the worse side:
    2 * bound for an upper bound, 1 - 2 * (1 - bound) for a lower bound on a share."""
    return 2.0 * bound if comparison == "<=" else 1.0 - 2.0 * (1.0 - bound)


def item_passes_by_rule(
    value: float,
    ci: tuple[float, float] | None,
    comparison: Comparison,
    bound: float,
) -> dict[str, bool]:
    """Whether the pytest item passes under each rule, for a value and interval decided by the
    shared rule (`checks.common.decision.decide`), as `bounded_result` decides them."""
    from robustness_checks.checks.common.decision import decide, item_passes

    return {
        rule: item_passes(decide(value, ci, comparison, bound, rule), rule)  # type: ignore[arg-type]
        for rule in RULES
    }


# A check whose data cannot support its statistic (InsufficientData): an error under point
# (the item fails), inconclusive under strict (fails) and lenient (passes with a warning).
INSUFFICIENT: dict[str, bool] = {"point": False, "strict": False, "lenient": True}


def stack(per_seed: Sequence[dict[str, bool]]) -> dict[str, np.ndarray]:
    """Per-seed {rule: passed} dicts as {rule: boolean array over seeds}."""
    return {rule: np.array([found[rule] for found in per_seed], dtype=bool) for rule in RULES}


def model_case(
    check_type: str,
    metric: str,
    comparison: Comparison,
    bound: float,
    draw: Callable[[float, int, np.random.Generator], tuple[Any, Any]],
    *,
    params: dict[str, Any] | None = None,
    bound_field: str | None = None,
    violating: float | None = None,
    population: str = "",
    sizes: tuple[int, ...] = SIZES,
) -> ValidityCase:
    """A case for any check type, run end to end through `run_check`: `draw(truth, n, rng)`
    returns a (model, data) pair whose population metric is `truth`. Every rule is run on the
    first seeds; where re-deciding the point rule's value and interval with the shared rule
    gives the same outcomes there, the other seeds run once and are re-decided (the check then
    decides as `bounded_result` does), else every rule runs for every seed."""
    field = bound_field or ("max" if comparison == "<=" else "min")
    fields = {**(params or {}), field: bound}

    def run(model: Any, data: Any, seed: int, confidence: float, rule: str) -> Any:
        from robustness_checks.api import run_check

        return run_check(
            check_type, model, data, name="validity", seed=seed, confidence=confidence,
            device="cpu", decision=rule, **fields,
        )  # fmt: skip

    def passes(truth: float, n: int, seeds: Sequence[int], confidence: float) -> dict:
        from robustness_checks.errors import InsufficientData

        found = []
        shared_rule = True
        for number, seed in enumerate(seeds):
            model, data = draw(truth, n, np.random.default_rng([seed, n]))
            try:
                point = run(model, data, seed, confidence, "point")
            except InsufficientData:
                found.append(dict(INSUFFICIENT))
                continue
            redecided = item_passes_by_rule(point.value, point.ci, comparison, bound)
            if number < CHECKED_SEEDS or not shared_rule:
                actual = {"point": point.passed}
                for rule in ("strict", "lenient"):
                    actual[rule] = run(model, data, seed, confidence, rule).passed
                shared_rule = shared_rule and actual == redecided
                found.append(actual)
            else:
                found.append(redecided)
        return stack(found)

    return ValidityCase(
        check_type=check_type,
        metric=metric,
        comparison=comparison,
        bound=bound,
        violating=violating_value(comparison, bound) if violating is None else violating,
        passes=passes,
        population=population,
        sizes=sizes,
    )


CHECKED_SEEDS = 10  # seeds on which model_case runs every rule before trusting re-decisions
