"""Validity cases of the `noise` check: inputs whose misclassification probability is known."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from robustness_checks.validity.cases import RULES, ValidityCase, violating_value

BOUND = 1e-3
BUDGET = 20_000  # max_evaluations per input (the check's default)
TARGET = 0.1  # relative_error (the check's default)
BATCH = 1024  # batch_size (the check's default)


def cases() -> list[ValidityCase]:
    """max_probability 1e-3 on n inputs, each failing with probability = truth."""
    return [
        ValidityCase(
            check_type="noise",
            metric="probability",
            comparison="<=",
            bound=BOUND,
            violating=violating_value("<=", BOUND),
            passes=_passes,
            population=(
                "n inputs of a linear model whose failure probability under noise is exactly "
                "the truth; plain Monte Carlo (estimator: mc, 20,000 evaluations, target 0.1) "
                "simulated draw for draw as binomial batches, decided by the check's code "
                "(input_row for each input, verdict over them)"
            ),
        )
    ]


def _passes(truth: float, n: int, seeds: Sequence[int], confidence: float) -> dict[str, np.ndarray]:
    from robustness_checks.checks.common.decision import item_passes
    from robustness_checks.checks.noise import input_level, input_row, verdict

    level = input_level(confidence, n)
    found: dict[str, list[bool]] = {rule: [] for rule in RULES}
    for seed in seeds:
        rng = np.random.default_rng([seed, n, int(truth * 1e9)])
        estimates = monte_carlo_estimates(truth, n, level, rng)
        for rule in RULES:
            rows = [input_row(i, 0, e, BOUND, rule) for i, e in enumerate(estimates)]
            found[rule].append(item_passes(verdict(rows), rule))  # type: ignore[arg-type]
    return {rule: np.array(values) for rule, values in found.items()}


def monte_carlo_estimates(truth: float, n: int, level: float, rng: np.random.Generator) -> list:
    """What the `mc` estimator returns for n inputs that fail with probability `truth`: its
    batch schedule, its stopping rule and its Clopper-Pearson interval, the draws binomial."""
    from robustness_checks.failure_probability.monte_carlo import next_batch
    from robustness_checks.failure_probability.result import NoiseEstimate

    failures = np.zeros(n, dtype=np.int64)
    draws = np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    done = 0  # draws of every input still running: a batch size depends on them alone
    while active.any() and (size := next_batch(done, BATCH, BUDGET - done)) > 0:
        failures[active] += rng.binomial(size, truth, size=int(active.sum()))
        draws[active] += size
        done += size
        with np.errstate(divide="ignore", invalid="ignore"):
            p = failures / np.maximum(draws, 1)
            error = np.where(failures > 0, np.sqrt((1 - p) / (draws * p)), np.inf)
        active &= error > TARGET
    alpha = 1 - level
    low = np.where(failures > 0, stats.beta.ppf(alpha / 2, failures, draws - failures + 1), 0.0)
    high = np.where(
        failures < draws, stats.beta.ppf(1 - alpha / 2, failures + 1, draws - failures), 1.0
    )
    p = failures / draws
    error = np.where(failures > 0, np.sqrt((1 - p) / (draws * np.where(p > 0, p, 1))), np.inf)
    return [
        NoiseEstimate(
            estimator="mc",
            probability=float(p[i]),
            log10_probability=math.log10(p[i]) if failures[i] else -math.inf,
            relative_error=float(error[i]),
            ci=(float(low[i]), float(high[i])),
            confidence=level,
            evaluations=int(draws[i]),
            ess=None,
            converged=bool(error[i] <= TARGET),
            draws=int(draws[i]),
        )
        for i in range(n)
    ]
