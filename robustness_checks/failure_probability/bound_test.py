"""Is p at most a bound? Monte Carlo draws until an anytime-valid test settles it either way.

A draw fails with probability p. For the bound b, two mixtures of likelihood ratios are test
supermartingales: against H0: p >= b (shown false when p is below),

    M_pass = sum_j w_j prod_i (q_j / b)^x_i ((1 - q_j) / (1 - b))^(1 - x_i),   q_j < b,

and against H0: p <= b the same with q_j > b (M_fail). Each factor has mean at most 1 under its
H0 (the mean is linear in p, 1 at p = b, and falls away from b on the H0 side), so by Ville's
inequality P(M ever reaches 1 / a) <= a: looking after every batch and stopping when either
crosses is valid, whatever the stopping. With q = 0 in the pass mixture, an input whose draws
never fail passes after ln(1 / (w_0 a)) / -ln(1 - b) draws (about 4,800 for b = 1e-3, a = 0.01).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.monte_carlo import count_failures, next_batch
from robustness_checks.failure_probability.result import NoiseEstimate, history_point

# (q / b, weight): alternatives below the bound (to pass) and above it (to fail).
PASS_ALTERNATIVES: tuple[tuple[float, float], ...] = ((0.0, 0.9), (1 / 3, 0.1))
FAIL_ALTERNATIVES: tuple[tuple[float, float], ...] = ((2.0, 1 / 3), (10.0, 1 / 3), (100.0, 1 / 3))


def log_evidence(
    failures: int, draws: int, bound: float, alternatives: Sequence[tuple[float, float]]
) -> float:
    """log of the mixture's value after `failures` in `draws`, against p on the far side of
    `bound` from the alternatives."""
    terms = []
    for ratio, weight in alternatives:
        q = min(ratio * bound, 1.0 - 1e-12)
        if q == 0.0:
            if failures:
                continue
            terms.append(math.log(weight) - draws * math.log1p(-bound))
            continue
        terms.append(
            math.log(weight)
            + failures * math.log(q / bound)
            + (draws - failures) * (math.log1p(-q) - math.log1p(-bound))
        )
    if not terms:
        return -math.inf
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def draws_to_pass(bound: float, error: float) -> int:
    """Draws an input that never fails needs to pass at one-sided `error`."""
    weight = dict((r, w) for r, w in PASS_ALTERNATIVES)[0.0]
    return math.ceil(math.log(1.0 / (weight * error)) / -math.log1p(-bound))


def draws_to_settle_below(p: float, bound: float, error: float) -> int | None:
    """Expected draws until the pass test settles an input whose true probability is `p` below
    `bound`: the alternative of fastest expected log growth, ln(1 / (w a)) / growth (None when
    none grows)."""
    best = None
    for ratio, weight in PASS_ALTERNATIVES:
        q = ratio * bound
        if q == 0.0:
            continue  # dies at the first failure: no use once failures are seen
        growth = p * math.log(q / bound) + (1 - p) * (math.log1p(-q) - math.log1p(-bound))
        if growth > 0:
            needed = math.ceil(math.log(1.0 / (weight * error)) / growth)
            best = needed if best is None else min(best, needed)
    return best


@dataclass(frozen=True)
class BoundVerdict:
    """Where the draws left the question: 'below', 'above' or 'open' after `failures` in
    `draws`, with the anytime-valid one-sided limits at that point."""

    side: str
    failures: int
    draws: int
    low: float
    high: float


def limits(failures: int, draws: int, error: float) -> tuple[float, float]:
    """The p that the pass test (for the upper limit) and the fail test (for the lower) would
    reject at `error` with these counts: bisection on the bound, 40 halvings in log space."""
    threshold = math.log(1.0 / error)

    def bisect(rejects: Callable[[float], bool], low: float, high: float) -> float:
        for _ in range(40):
            middle = math.sqrt(low * high)
            if rejects(middle):
                high = middle
            else:
                low = middle
        return high

    def passes(b: float) -> bool:
        return log_evidence(failures, draws, b, PASS_ALTERNATIVES) >= threshold

    def fails(b: float) -> bool:
        return log_evidence(failures, draws, b, FAIL_ALTERNATIVES) < threshold

    high = bisect(passes, 1e-300, 1.0 - 1e-9) if draws else 1.0
    low = 0.0 if not failures else bisect(fails, 1e-300, max(failures / draws, 1e-300))
    return low, min(high, 1.0)


def bound_test(
    oracle: MarginOracle,
    *,
    bound: float,
    error: float,
    max_evaluations: int,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[NoiseEstimate, BoundVerdict]:
    """Monte Carlo draws until p <= `bound` or p > `bound` is shown at one-sided `error`
    (each side), or `max_evaluations` are spent."""
    threshold = math.log(1.0 / error)
    failures, draws, side = 0, 0, "open"
    history = []
    needed = draws_to_pass(bound, error)
    while (size := next_batch(draws, batch_size, max_evaluations - draws)) > 0:
        if not failures and draws < needed:
            size = min(size, needed - draws)  # land on the draw where a clean input passes
        failures += count_failures(oracle, size, generator)
        draws += size
        low, high = limits(failures, draws, error)
        p = failures / draws
        log_p = math.log(p) if failures else -math.inf
        history.append(history_point(draws, log_p, math.inf, (low, high)))
        if log_evidence(failures, draws, bound, PASS_ALTERNATIVES) >= threshold:
            side = "below"
            break
        if log_evidence(failures, draws, bound, FAIL_ALTERNATIVES) >= threshold:
            side = "above"
            break
    low, high = limits(failures, draws, error)
    p = failures / draws if draws else 0.0
    estimate = NoiseEstimate(
        estimator="mc-at-bound",
        probability=p,
        log10_probability=math.log10(p) if failures else -math.inf,
        relative_error=math.sqrt((1 - p) / (draws * p)) if failures else math.inf,
        ci=(low, high),
        confidence=1.0 - 2.0 * error,
        evaluations=oracle.evaluations,
        ess=None,
        converged=side != "open",
        history=history,
        details={"failures": failures, "draws": draws, "interval": "anytime-valid betting"},
    )
    return estimate, BoundVerdict(side, failures, draws, low, high)
