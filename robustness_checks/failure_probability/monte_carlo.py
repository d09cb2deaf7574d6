"""Plain Monte Carlo in sequential batches with a Clopper-Pearson interval."""

from __future__ import annotations

import math

import torch

from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.result import (
    NoiseEstimate,
    history_point,
)
from robustness_checks.metrics.intervals import clopper_pearson


def next_batch(done: int, batch_size: int, remaining: int) -> int:
    """Sequential batch size: at least `batch_size`, growing by 1/8 of the draws so far.

    Geometric growth keeps the number of host syncs logarithmic in the budget while wasting at
    most about 1/8 of the draws past the point where the target was reached.
    """
    return max(0, min(remaining, max(batch_size, done // 8)))


def count_failures(oracle: MarginOracle, size: int, generator: torch.Generator) -> int:
    """Failures among `size` fresh Gaussian draws (one host sync)."""
    count = torch.zeros((), dtype=torch.int64, device=oracle.device)
    for chunk in oracle.chunk_sizes(size):
        noise = torch.randn(
            (chunk, oracle.dim), generator=generator, device=oracle.device, dtype=oracle.dtype
        )
        margin, _ = oracle.evaluate(noise)
        count += (margin <= 0).sum()
    return int(count)


def monte_carlo(
    oracle: MarginOracle,
    *,
    relative_error: float,
    max_evaluations: int,
    confidence: float,
    batch_size: int,
    generator: torch.Generator,
) -> NoiseEstimate:
    """Draw until sqrt((1 - p) / (n p)) <= `relative_error` or the budget is spent."""
    failures, draws = 0, 0
    history = []
    error = math.inf
    while (size := next_batch(draws, batch_size, max_evaluations - draws)) > 0:
        failures += count_failures(oracle, size, generator)
        draws += size
        p = failures / draws
        error = math.sqrt((1 - p) / (draws * p)) if failures else math.inf
        ci = clopper_pearson(failures, draws, confidence)
        history.append(history_point(draws, math.log(p) if failures else -math.inf, error, ci))
        if error <= relative_error:
            break
    ci = clopper_pearson(failures, draws, confidence)
    return NoiseEstimate(
        estimator="mc",
        probability=failures / draws if draws else 0.0,
        log10_probability=math.log10(failures / draws) if failures else -math.inf,
        relative_error=error,
        ci=ci,
        confidence=confidence,
        evaluations=oracle.evaluations,
        ess=None,
        converged=error <= relative_error,
        history=history,
        details={"failures": failures, "draws": draws, "interval": "clopper-pearson"},
    )
