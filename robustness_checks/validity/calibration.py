"""Validity cases of the `calibration` check: 10-class populations whose metric is known.

Every population draws logits z = scale * N(0, I_10) and labels y ~ softmax(z). A *tempered*
population's model reports softmax(T z): T > 1 is overconfident, and every calibration error
grows with T from 0 at T = 1. A *sharpness* population's model is calibrated (it reports
softmax(z)) and its parameter is the scale: the Brier score and NLL fall as the scale grows.
The parameter that puts each metric at its bound b and at 2 b is solved once by `solve()` on a
fixed-seed Monte Carlo sample of 10^7 logit vectors, where the labels' noise is integrated out
exactly (the accuracy of the top class is softmax(z) at the argmax, not a drawn label), so the
only error is the logits' sampling, 5e-5 to 2e-4 by metric (`python -m
robustness_checks.validity.calibration [metric ...]` recomputes SETTINGS in about an hour;
tests/test_calibration_validity.py checks the values on a fresh sample).

Population versions of the metrics (default settings: 15 bins): ece, mce, classwise_ece and
ece_debiased over the equal-width (lo, hi] bins of the population's confidence; ace over the
population's equal-mass bins, whose edges are the 1/15, ..., 14/15 quantiles of the confidence
(the limit of the sample's equal-mass bins); smece the fixed point sigma = smECE_sigma(D) of the
population's smooth ECE in relplot's discretisation; brier and nll the expectations.

Why these populations: the top-label metrics use logits 8 N(0, I) (accuracy 0.87). With the
issue's 3 N(0, I) (accuracy 0.66) the standard error of accuracy - mean confidence at n = 1000
is 0.0135 (Var(correct - confidence) = 0.182), so no valid one-sided 2.5% test of ece <= 0.035
reaches 80% power at ece = 0.07: the best has Phi(0.035 / 0.0135 - 1.96) = 74%. mce uses 2 N(0,
I), where the middle confidence bins hold most examples (its largest gap lies there; with 8 N(0,
I) that bin holds 5% of the examples). classwise_ece uses 3 N(0, I), where its values are larger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import log_softmax, softmax

from robustness_checks.checks.calibration import CalibrationCheck, measure_calibration
from robustness_checks.errors import InsufficientData
from robustness_checks.metrics.calibration import equal_width_bins
from robustness_checks.metrics.calibration_bias import smooth_ece_weighted
from robustness_checks.validity.cases import (
    INSUFFICIENT,
    Passes,
    ValidityCase,
    item_passes_by_rule,
    stack,
    violating_value,
)

CLASSES = 10
BINS = 15
POPULATION_EXAMPLES = 10**7
POPULATION_SEED = 20_261_207
_CHUNK = 500_000
_NODES = 4097  # nodes of the population's smooth ECE (spacing 2.4e-4, far below any bandwidth)


@dataclass(frozen=True)
class Family:
    """Logits scale * N(0, I_10), labels from softmax(logits); the model reports
    softmax(temperature * logits) (tempered, parameter: temperature) or softmax(parameter *
    N(0, I)) (sharpness, parameter: the scale; calibrated)."""

    scale: float
    tempered: bool

    def logits(self, parameter: float, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(true logits, reported logits) for standard normal draws (..., 10)."""
        if self.tempered:
            true = self.scale * normal
            return true, parameter * true
        true = parameter * normal
        return true, true

    def describe(self, parameter: str) -> str:
        """One line for the validity table."""
        if self.tempered:
            return (
                f"10-class logits z = {self.scale:g} N(0, I), labels ~ softmax(z), model reports "
                f"softmax(T z), T = {parameter}"
            )
        return (
            f"10-class logits z = s N(0, I), labels ~ softmax(z), calibrated model, s = {parameter}"
        )


@dataclass(frozen=True)
class Setting:
    """A metric's bound, its population family and the parameters at the bound and at twice
    the bound (from `solve()`)."""

    bound: float
    family: Family
    parameters: tuple[float, float]


TOP_LABEL = Family(scale=8.0, tempered=True)  # accuracy 0.87
MAXIMUM = Family(scale=2.0, tempered=True)  # accuracy 0.53: the middle bins hold the mass
CLASSWISE = Family(scale=3.0, tempered=True)  # accuracy 0.66
SHARPNESS = Family(scale=1.0, tempered=False)

# Solved by `solve()` (python -m robustness_checks.validity.calibration), 10^7 logit vectors.
SETTINGS: dict[str, Setting] = {
    "ece": Setting(0.035, TOP_LABEL, (1.355663, 2.097470)),
    "ace": Setting(0.035, TOP_LABEL, (1.355663, 2.097470)),
    "mce": Setting(0.2, MAXIMUM, (1.574898, 2.978622)),
    "classwise_ece": Setting(0.01, CLASSWISE, (1.191391, 1.454932)),
    "ece_debiased": Setting(0.05, TOP_LABEL, (1.424530, 2.641876)),
    "smece": Setting(0.05, TOP_LABEL, (1.477014, 2.383882)),
    "brier": Setting(0.3, SHARPNESS, (4.930072, 2.054970)),
    "nll": Setting(0.5, SHARPNESS, (5.623489, 2.823214)),
}


def draw(
    family: Family, parameter: float, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` examples: the model's probabilities (count, 10) and labels drawn from the
    population."""
    true, reported = family.logits(parameter, rng.standard_normal((count, CLASSES)))
    cumulative = np.cumsum(softmax(true, axis=1), axis=1)
    labels = np.minimum((cumulative < rng.random((count, 1))).sum(axis=1), CLASSES - 1)
    return softmax(reported, axis=1), labels


# --- population values --------------------------------------------------------------------------


@dataclass
class _Sums:
    """Sums over the population sample that the metrics' population values need."""

    count: int = 0
    top: np.ndarray | None = None  # per bin: examples, sum of (accuracy - confidence)
    classwise: np.ndarray | None = None  # per (class, bin): sum of (P(y = k) - p_k)
    nodes: np.ndarray | None = None  # per node: spread residual (confidence - accuracy), mass
    loss: float = 0.0  # brier or nll
    ordered: list[np.ndarray] | None = None  # confidences and residuals, for equal-mass bins


def _accumulate(sums: _Sums, metric: str, true: np.ndarray, reported: np.ndarray) -> None:
    """Add one chunk of logit vectors to `sums`."""
    truth = softmax(true, axis=1)
    model = softmax(reported, axis=1)
    rows = np.arange(len(true))
    top = model.argmax(axis=1)
    confidence = model[rows, top]
    residual = truth[rows, top] - confidence
    sums.count += len(true)
    if metric in ("ece", "mce", "ece_debiased"):
        ids = equal_width_bins(confidence, BINS)
        chunk = np.stack([np.bincount(ids, minlength=BINS), np.bincount(ids, residual, BINS)])
        sums.top = chunk if sums.top is None else sums.top + chunk
    elif metric == "ace":
        sums.ordered = (sums.ordered or []) + [np.stack([confidence, residual])]
    elif metric == "classwise_ece":
        cells = (equal_width_bins(model, BINS) + np.arange(CLASSES) * BINS).ravel()
        chunk = np.bincount(cells, (truth - model).ravel(), CLASSES * BINS)
        sums.classwise = chunk if sums.classwise is None else sums.classwise + chunk
    elif metric == "smece":
        position = confidence * (_NODES - 1)
        left = np.clip(position.astype(np.int64), 0, _NODES - 2)
        frac = position - left
        chunk = np.stack(
            [
                np.bincount(left, -residual * (1 - frac), _NODES)
                + np.bincount(left + 1, -residual * frac, _NODES),
                np.bincount(left, 1 - frac, _NODES) + np.bincount(left + 1, frac, _NODES),
            ]
        )
        sums.nodes = chunk if sums.nodes is None else sums.nodes + chunk
    elif metric == "brier":
        sums.loss += float(((model**2).sum(1) - 2 * (truth * model).sum(1) + 1).sum())
    else:
        sums.loss += float(-(truth * log_softmax(reported, axis=1)).sum())


def _value(sums: _Sums, metric: str) -> float:
    """The population value from the accumulated sums."""
    if metric in ("brier", "nll"):
        return sums.loss / sums.count
    if metric == "ece":
        return float(np.abs(sums.top[1]).sum() / sums.count)
    if metric == "mce":
        filled = sums.top[0] > 0
        return float(np.max(np.abs(sums.top[1][filled] / sums.top[0][filled])))
    if metric == "ece_debiased":
        filled = sums.top[0] > 0
        return float(np.sqrt((sums.top[1][filled] ** 2 / sums.top[0][filled]).sum() / sums.count))
    if metric == "classwise_ece":
        return float(np.abs(sums.classwise).sum() / (CLASSES * sums.count))
    if metric == "ace":
        confidence, residual = np.concatenate(sums.ordered, axis=1)
        order = np.argsort(confidence, kind="stable")
        ids = np.arange(len(order)) * BINS // len(order)
        return float(np.abs(np.bincount(ids, residual[order], BINS)).sum() / len(order))
    return _smooth_fixed_point(sums.nodes[0], sums.nodes[1])


def _smooth_fixed_point(residual: np.ndarray, mass: np.ndarray) -> float:
    """sigma with smECE_sigma = sigma for node sums of residual and mass."""
    positions = np.linspace(0.0, 1.0, _NODES)

    def excess(sigma: float) -> float:
        return smooth_ece_weighted(positions, residual, mass, sigma) - sigma

    if excess(1e-3) <= 0:  # calibrated (to relplot's smallest bandwidth)
        return 0.0
    return float(optimize.brentq(excess, 1e-3, 1.0, xtol=1e-8))


def population_value(
    metric: str,
    family: Family,
    parameter: float,
    examples: int = POPULATION_EXAMPLES,
    seed: int = POPULATION_SEED,
) -> float:
    """The metric's population value at `parameter`, integrating the labels out exactly over
    `examples` logit vectors drawn with `seed` (in chunks, the same draws for every
    parameter)."""
    sums = _Sums()
    for first in range(0, examples, _CHUNK):
        rng = np.random.default_rng([seed, first])
        normal = rng.standard_normal((min(_CHUNK, examples - first), CLASSES))
        _accumulate(sums, metric, *family.logits(parameter, normal))
    return _value(sums, metric)


def solve(metric: str, target: float, family: Family, examples: int = POPULATION_EXAMPLES):
    """The family's parameter at which the metric's population value is `target`: bracketed on
    a tenth of the sample, then refined on all of it."""
    low, high = (1.0 + 1e-6, 8.0) if family.tempered else (0.2, 20.0)
    for size, tolerance in ((examples // 10, 1e-4), (examples, 1e-6)):

        def excess(parameter: float, size: int = size) -> float:
            return population_value(metric, family, parameter, size) - target

        found = optimize.brentq(excess, low, high, xtol=tolerance)
        low, high = found * 0.99, found * 1.01
    return found


# --- cases --------------------------------------------------------------------------------------


def passes_of(metric: str, setting: Setting) -> Passes:
    """The harness's `passes` for one metric: per seed, n examples from the population at the
    bound or at twice the bound, measured by the check's own function with its defaults."""
    params = CalibrationCheck(
        type="calibration", name=f"calibration_{metric}", metric=metric, max=setting.bound
    )

    def passes(truth: float, n: int, seeds: Sequence[int], confidence: float) -> dict:
        parameter = _parameter_at(setting, truth)
        found = []
        for seed in seeds:
            probabilities, labels = draw(
                setting.family, parameter, n, np.random.default_rng([seed, n, 0])
            )
            try:
                measured = measure_calibration(
                    params,
                    probabilities,
                    labels,
                    confidence=confidence,
                    rng=np.random.default_rng([seed, n, 1]),
                )
            except InsufficientData:
                found.append(INSUFFICIENT)
                continue
            found.append(item_passes_by_rule(measured.value, measured.ci, "<=", setting.bound))
        return stack(found)

    return passes


def _parameter_at(setting: Setting, truth: float) -> float:
    """The solved parameter whose population value is `truth` (the bound or twice it)."""
    for value, parameter in zip(
        (setting.bound, 2 * setting.bound), setting.parameters, strict=True
    ):
        if abs(truth - value) < 1e-12:
            return parameter
    raise ValueError(
        f"no population solved for value {truth:g} (solved: {setting.bound:g}, "
        f"{2 * setting.bound:g}); run solve()"
    )


def cases() -> list[ValidityCase]:
    """One case per metric of the calibration check."""
    found = []
    for metric, setting in SETTINGS.items():
        at_bound, at_violating = (f"{p:.4f}" for p in setting.parameters)
        found.append(
            ValidityCase(
                check_type="calibration",
                metric=metric,
                comparison="<=",
                bound=setting.bound,
                violating=violating_value("<=", setting.bound),
                passes=passes_of(metric, setting),
                population=setting.family.describe(f"{at_bound} (bound) / {at_violating} (2x)"),
            )
        )
    return found


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:] or SETTINGS:
        setting = SETTINGS[name]
        solved = [solve(name, v, setting.family) for v in (setting.bound, 2 * setting.bound)]
        print(f'"{name}": ({solved[0]:.6f}, {solved[1]:.6f}),', flush=True)
