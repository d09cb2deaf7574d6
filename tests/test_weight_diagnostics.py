"""The tail allowance of importance weights: limits and truncated-Pareto sums of known mean."""

from __future__ import annotations

import math

import pytest
import torch

from robustness_checks.failure_probability.weight_diagnostics import tail_allowance, tail_index


def test_limits_of_the_allowance() -> None:
    # Index 1: w_max times the log headroom to the bound; index 1/2 without a bound: the
    # Pareto mean beyond the maximum, a / (a - 1) = 2 times w_max.
    assert tail_allowance(1.0, 0.04, 7.0) == pytest.approx(0.28)
    assert tail_allowance(0.5, 0.04, 200.0) == pytest.approx(0.08)
    assert tail_allowance(1.5, 0.04, 7.0) == pytest.approx(0.04 * math.expm1(7 / 3) / 0.5)
    assert tail_allowance(0.9, 0.04, 0.0) == 0.0  # the largest weight is the bound itself
    assert tail_allowance(math.nan, 0.04, 7.0) == 0.0
    # Continuous through index 1.
    assert tail_allowance(1 - 1e-6, 0.04, 7.0) == pytest.approx(0.28, rel=1e-5)


def _truncated_pareto(xi: float, bound: float, replications: int, draws: int) -> torch.Tensor:
    """Samples (replications, draws) of a Pareto with index 1 / xi on [1, bound]."""
    a = 1 / xi
    u = torch.rand(replications, draws, generator=torch.Generator().manual_seed(0))
    return (1 - u.double() * (1 - bound**-a)) ** (-1 / a)


def _mean(xi: float, bound: float) -> float:
    a = 1 / xi
    mass = 1 - bound**-a
    if abs(a - 1) < 1e-12:
        return math.log(bound) / mass
    return a / (a - 1) * (1 - bound ** (1 - a)) / mass


@pytest.mark.parametrize("xi", [0.7, 0.9, 1.0])
def test_allowance_lifts_typical_heavy_tailed_sums_to_their_mean(xi: float) -> None:
    bound, draws = 1e6, 5000
    weights = _truncated_pareto(xi, bound, 300, draws)
    mean = _mean(xi, bound)
    below, lifted = 0, []
    for row in weights:
        log_w = row.log()
        top = log_w.topk(int(3 * math.sqrt(draws)) + 1).values
        share = float(row.max() / row.sum())
        allowance = tail_allowance(
            float(tail_index(top, draws)), share, math.log(bound) - float(log_w.max())
        )
        below += float(row.mean()) < mean
        lifted.append(float(row.mean()) * (1 + allowance) / mean)
    # A heavy-tailed sum usually falls short of its mean ...
    assert below / len(weights) > 0.6
    # ... and the allowance brings most of them up to it without running far past.
    assert sum(x >= 1 for x in lifted) / len(lifted) > 0.6
    assert sorted(lifted)[len(lifted) // 2] < 1.5
