"""The noise gate decided at the bound: an anytime-valid Monte Carlo test, its error rates over
many seeds, and its cost on inputs with closed-form probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_noise_check import affine, one_input

import robustness_checks
from robustness_checks.failure_probability.bound_test import (
    FAIL_ALTERNATIVES,
    PASS_ALTERNATIVES,
    draws_to_pass,
    log_evidence,
)
from robustness_checks.failure_probability.monte_carlo import next_batch

SEEDS = 2000


def _crossings(p: float, bound: float, error: float, budget: int, seed: int) -> np.ndarray:
    """Per seed, +1 when the pass test crossed first, -1 the fail test, 0 neither, with the
    batches `bound_test` draws (batch 1024, landing on `draws_to_pass` while failure-free)."""
    rng = np.random.default_rng(seed)
    threshold = math.log(1 / error)
    needed = draws_to_pass(bound, error)
    found = np.zeros(SEEDS, dtype=int)
    for s in range(SEEDS):
        failures = draws = 0
        while (size := next_batch(draws, 1024, budget - draws)) > 0:
            if not failures and draws < needed:
                size = min(size, needed - draws)
            failures += int(rng.binomial(size, p))
            draws += size
            if log_evidence(failures, draws, bound, PASS_ALTERNATIVES) >= threshold:
                found[s] = 1
                break
            if log_evidence(failures, draws, bound, FAIL_ALTERNATIVES) >= threshold:
                found[s] = -1
                break
    return found


@pytest.mark.parametrize("error", [0.045, 0.009])
def test_at_the_bound_neither_side_errs_more_than_stated(error: float) -> None:
    """At p = bound both hypotheses hold, so every crossing is an error: over 2,000 seeds each
    side crosses at most `error` of the time (plus two binomial standard errors)."""
    found = _crossings(1e-3, 1e-3, error, 20_000, seed=int(error * 1e4))
    slack = 2 * math.sqrt(error * (1 - error) / SEEDS)
    assert (found == 1).mean() <= error + slack
    assert (found == -1).mean() <= error + slack


def test_far_from_the_bound_it_settles_the_right_way() -> None:
    below = _crossings(1e-5, 1e-3, 0.009, 10_000, seed=1)
    assert (below == 1).mean() > 0.95 and (below == -1).sum() == 0
    above = _crossings(1e-2, 1e-3, 0.009, 10_000, seed=2)
    assert (above == -1).mean() > 0.99 and (above == 1).sum() == 0


def test_inputs_far_below_the_bound_pass_within_five_thousand_evaluations() -> None:
    """Five affine inputs with p from 3e-7 to 3e-5 (closed form) under max_probability 1e-3:
    each passes by the test at the bound in at most 5,000 evaluations (importance sampling
    alone needed tens of thousands on such inputs and could end inconclusive)."""
    rows = []
    for distance in (5.0, 4.5, 4.25, 4.0, 5.5):
        model, x, truth = affine(distance)
        result = robustness_checks.noise(
            model,
            (x.repeat(5, 1), torch.zeros(5, dtype=torch.long)),
            sigma=0.1,
            max_probability=1e-3,
            bounds=None,
        )
        assert result, result.message
        rows += result.details["inputs"]
        for row in result.details["inputs"]:
            assert row["ci"][0] <= truth <= row["ci"][1]
    assert all(row["outcome"] == "within" for row in rows)
    assert max(row["evaluations"] for row in rows) <= 5000
    # Five inputs at 95%: each side of each input at 0.9 x 1%; a failure-free input passes
    # after ln(1 / (0.9 x 0.9 x 0.01)) / -ln(1 - 1e-3) draws.
    assert rows[0]["evaluations"] == draws_to_pass(1e-3, 0.9 * 0.01) == 4814


def test_an_input_near_the_bound_is_inconclusive_and_the_message_names_what_would_settle() -> None:
    from robustness_checks.checks.noise import settle_hint

    model, x, truth = affine(3.1)  # p about 9.7e-4, just below 1e-3
    result = one_input(
        model,
        x,
        estimator="mc",
        max_probability=1e-3,
        max_evaluations=4000,
    )
    assert result.details["inputs"][0]["outcome"] == "inconclusive" and truth < 1e-3
    assert "max_evaluations:" in result.message or "estimator: importance or splitting" in (
        result.message
    )
    # At p = bound / 2 the test's q = bound / 3 alternative grows by 0.117 bound per draw.
    hint = settle_hint({"probability": 5e-4}, 1e-3, 0.05)
    expected = math.ceil(
        math.log(1 / (0.1 * 0.9 * 0.05))
        / (5e-4 * math.log(1 / 3) + (1 - 5e-4) * (math.log1p(-1e-3 / 3) - math.log1p(-1e-3)))
    )
    assert f"needs about {expected:,} draws: max_evaluations: {2 * expected:,}" in hint
    assert "too close to the bound" in settle_hint({"probability": 2e-3}, 1e-3, 0.05)
