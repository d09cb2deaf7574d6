"""Validity cases of the ranking checks (`selective`, `ood`, `failure_prediction`): populations
whose metric is known in closed form (or by one numerical integral), decided by the checks' own
measurement functions with the checks' default 1000 bootstrap resamples."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import numpy as np
from scipy import integrate, optimize, stats

from robustness_checks.checks.failure_prediction import measure_failure_prediction
from robustness_checks.checks.ood import measure_ood
from robustness_checks.checks.selective import measure_selective
from robustness_checks.errors import InsufficientData
from robustness_checks.metrics.intervals import Estimate
from robustness_checks.results import Comparison
from robustness_checks.validity.cases import (
    INSUFFICIENT,
    Passes,
    ValidityCase,
    item_passes_by_rule,
    stack,
    violating_value,
)

RESAMPLES = 1000  # the checks' default `bootstrap`
COVERAGE = 0.8
POWER = 2  # selective: P(error | uncertainty quantile s) = slope * s ** POWER
ERROR_RATE = 0.2  # failure_prediction: each example is an error with this probability

# (population value, n, data rng, bootstrap rng, confidence) -> the check's estimates
Draw = Callable[[float, int, np.random.Generator, np.random.Generator, float], dict[str, Estimate]]


def passes_of(draw: Draw, metric: str, comparison: Comparison, bound: float) -> Passes:
    """The harness's `passes`: per seed, draw a sample at the population value, measure it with
    the check's function and decide every rule (InsufficientData: inconclusive)."""

    def passes(truth: float, n: int, seeds: Sequence[int], confidence: float) -> dict:
        found = []
        for seed in seeds:
            data, bootstrap = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
            try:
                estimate = draw(truth, n, data, bootstrap, confidence)[metric]
            except InsufficientData:
                found.append(INSUFFICIENT)
                continue
            found.append(item_passes_by_rule(estimate.value, estimate.interval, comparison, bound))
        return stack(found)

    return passes


def case(
    check_type: str, metric: str, comparison: Comparison, bound: float, draw: Draw, population: str
) -> ValidityCase:
    """One bound of one metric, its violating value and its population."""
    return ValidityCase(
        check_type=check_type,
        metric=metric,
        comparison=comparison,
        bound=bound,
        violating=violating_value(comparison, bound),
        passes=passes_of(draw, metric, comparison, bound),
        population=population,
    )


# --- selective ----------------------------------------------------------------------------------
# Uncertainty u ~ U(0, 1) (its own quantile); P(error | u) = slope * u^2. The accuracy on the
# coverage g most certain is 1 - slope g^2 / 3, and AURC = int_0^1 slope g^2 / 3 dg = slope / 9.


def slope_for_accuracy(accuracy: float) -> float:
    """The slope whose accuracy at COVERAGE is `accuracy`."""
    return (1.0 - accuracy) * (POWER + 1) / COVERAGE**POWER


def slope_for_aurc(aurc: float) -> float:
    """The slope whose AURC is `aurc`."""
    return aurc * (POWER + 1) ** 2


def draw_selective(slope: float, n: int, data: np.random.Generator) -> tuple[np.ndarray, ...]:
    """n uncertainties and whether each prediction is correct."""
    uncertainty = data.random(n)
    return uncertainty, data.random(n) >= slope * uncertainty**POWER


def selective_cases() -> list[ValidityCase]:
    """accuracy_at_coverage (coverage 0.8, min_accuracy 0.9) and aurc (max_aurc 0.05)."""

    def at_coverage(truth: float, n: int, data, bootstrap, confidence: float):
        uncertainty, correct = draw_selective(slope_for_accuracy(truth), n, data)
        return measure_selective(
            uncertainty,
            correct,
            COVERAGE,
            resamples=RESAMPLES,
            confidence=confidence,
            rng=bootstrap,
        )

    def aurc(truth: float, n: int, data, bootstrap, confidence: float):
        uncertainty, correct = draw_selective(slope_for_aurc(truth), n, data)
        return measure_selective(
            uncertainty,
            correct,
            None,
            resamples=RESAMPLES,
            confidence=confidence,
            rng=bootstrap,
            metrics=("aurc",),
        )

    population = (
        "n examples, uncertainty u ~ U(0, 1), P(error | u) = a u^2: accuracy at coverage 0.8 "
        "= 1 - 0.2133 a, AURC = a / 9"
    )
    return [
        case("selective", "accuracy_at_coverage", ">=", 0.9, at_coverage, population),
        case("selective", "aurc", "<=", 0.05, aurc, population),
    ]


# --- ood and failure_prediction -----------------------------------------------------------------
# Negative scores N(0, 1), positive scores N(d, 1): AUROC = Phi(d / sqrt 2); FPR95 = 1 -
# Phi(d + Phi^-1(0.05)); average precision at positive share p is
# E over positives x of p G(x) / (p G(x) + (1 - p) F(x)), G and F the classes' survival functions.


def shift_for_auroc(auroc: float) -> float:
    """The shift d whose AUROC is `auroc`."""
    return math.sqrt(2.0) * stats.norm.ppf(auroc)


def shift_for_fpr95(fpr: float) -> float:
    """The shift d whose FPR at 95% TPR is `fpr`."""
    return stats.norm.ppf(1.0 - fpr) - stats.norm.ppf(0.05)


def average_precision(shift: float, share: float) -> float:
    """The population average precision of N(shift, 1) positives against N(0, 1) negatives at
    positive share `share`."""

    def precision(x: float) -> float:
        found = share * stats.norm.sf(x - shift)
        return found / (found + (1.0 - share) * stats.norm.sf(x)) * stats.norm.pdf(x - shift)

    return integrate.quad(precision, shift - 12.0, shift + 12.0, epsabs=1e-12)[0]


@lru_cache(maxsize=64)
def shift_for_aupr(aupr: float, share: float) -> float:
    """The shift d whose population average precision is `aupr`."""
    return optimize.brentq(lambda d: average_precision(d, share) - aupr, -6.0, 12.0, xtol=1e-12)


def ood_cases() -> list[ValidityCase]:
    """auroc (min 0.9), aupr (min 0.9) and fpr95 (max 0.2); n in- and n out-of-distribution."""

    def of(metric: str, shift: Callable[[float], float]) -> Draw:
        def draw(truth: float, n: int, data, bootstrap, confidence: float):
            negative, positive = data.normal(size=n), data.normal(shift(truth), size=n)
            return measure_ood(
                negative,
                positive,
                resamples=RESAMPLES,
                confidence=confidence,
                rng=bootstrap,
                metrics=(metric,),
            )

        return draw

    population = "n in-distribution scores N(0, 1) and n OOD scores N(d, 1), d set by the value"
    return [
        case("ood", "auroc", ">=", 0.9, of("auroc", shift_for_auroc), population),
        case("ood", "aupr", ">=", 0.9, of("aupr", lambda v: shift_for_aupr(v, 0.5)), population),
        case("ood", "fpr95", "<=", 0.2, of("fpr95", shift_for_fpr95), population),
    ]


def failure_prediction_cases() -> list[ValidityCase]:
    """aupr_error (min 0.6; 0.2 is a score without information) and auroc (min 0.75; 0.5)."""

    def of(metric: str, shift: Callable[[float], float]) -> Draw:
        def draw(truth: float, n: int, data, bootstrap, confidence: float):
            wrong = data.random(n) < ERROR_RATE
            scores = data.normal(size=n) + shift(truth) * wrong
            return measure_failure_prediction(
                scores,
                wrong,
                resamples=RESAMPLES,
                confidence=confidence,
                rng=bootstrap,
                metrics=(metric,),
            )

        return draw

    population = (
        f"n examples, each an error with probability {ERROR_RATE}; scores N(0, 1) for correct "
        "predictions and N(d, 1) for errors, d set by the value"
    )
    aupr_shift = partial(shift_for_aupr, share=ERROR_RATE)
    return [
        case(
            "failure_prediction", "aupr_error", ">=", 0.6, of("aupr_error", aupr_shift), population
        ),
        case("failure_prediction", "auroc", ">=", 0.75, of("auroc", shift_for_auroc), population),
    ]
