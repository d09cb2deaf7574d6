"""Importance weights' estimate, relative error and the diagnostics that distrust it."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def moments_estimate(l1: float, l2: float, l4: float, draws: int) -> tuple[float, float, float]:
    """log p, relative error and ESS from log sums of w, w^2, w^4 over failing draws.

    RE^2 = (n sum w^2 / (sum w)^2 - 1) / n, widened by the relative uncertainty of that
    variance, sqrt(1 + sqrt(sum w^4) / sum w^2), which is low exactly when the largest
    weights have not been drawn yet; ESS = (sum w)^2 / sum w^2 (Kong).
    """
    log_p = min(0.0, l1 - math.log(draws))
    error = math.sqrt(max(0.0, math.expm1(l2 - 2 * l1 + math.log(draws))) / draws)
    error *= math.sqrt(1 + math.exp(l4 / 2 - l2))
    return log_p, error, math.exp(2 * l1 - l2)


def tail_too_heavy(
    tail: float, ess: float, top_share: float, *, min_ess: float, max_tail: float
) -> bool:
    """Whether the largest weights are too heavy-tailed to trust the sample variance.

    A Hill index below `max_tail` says so directly. Above it, the weights can still be
    trusted when there are many effective draws (4 `min_ess`) and no single draw carries more
    than 5% of the estimate: every weight is at most 1 / alpha (the proposal's nominal share),
    so the variance is finite, and the Hill index of a log-normal-like body of weights stays
    high at any sample size without any draw dominating.
    """
    if tail < max_tail:
        return False
    return not (ess >= 2 * min_ess and top_share <= 0.05)


def diagnose(
    log_p: float,
    error: float,
    ess: float,
    tail: float,
    top_share: float,
    replicate: dict[str, float] | None,
    *,
    min_ess: float,
    max_tail: float,
    max_disagreement: float = 3.5,
) -> list[str]:
    """Reasons the reported relative error cannot be trusted (empty when it can).

    Few effective draws, a heavy tail of the largest weights (a few unseen large weights may
    still carry much of p), or disagreement with the independent estimate of the last
    adaptation round's draws, in units of their combined log-normal spread: a failure region
    that one proposal misses and the other finds shows as such a disagreement.
    """
    reasons = []
    if not math.isfinite(log_p):
        return ["the proposal never drew a failure"]
    if ess < min_ess:
        reasons.append(f"effective sample size {ess:.0f} is below {min_ess:g}")
    if tail_too_heavy(tail, ess, top_share, min_ess=min_ess, max_tail=max_tail):
        reasons.append(
            f"tail index of the largest weights {tail:.2f} is not below {max_tail:g} "
            f"(the largest weight carries {100 * top_share:.0f}% of the estimate)"
        )
    if replicate is not None and math.isfinite(replicate["log_p"]):
        spread = math.sqrt(math.log1p(error**2) + math.log1p(replicate["relative_error"] ** 2))
        z = abs(log_p - replicate["log_p"]) / max(spread, 1e-12)
        replicate["z"] = z
        if z > max_disagreement:
            reasons.append(
                f"the last adaptation round's independent estimate "
                f"{math.exp(replicate['log_p']):.3g} differs from {math.exp(log_p):.3g} by "
                f"{z:.1f} combined standard errors"
            )
    return reasons


def tail_allowance(tail: float, top_share: float, headroom: float) -> float:
    """Share of p that the fitted tail of the weights puts beyond the largest weight drawn.

    Above a threshold the weights' tail is Pareto with index a = 1 / `tail` (the Hill
    estimate), truncated at the largest possible weight, 1 / alpha, which lies `headroom`
    (log) above the largest weight drawn, w_max. Among n draws about one is expected beyond
    w_max, and the mass there, w_max a / (a - 1) (1 - e^((1 - a) headroom)), is what a typical
    sum of heavy-tailed weights lacks: that many draws usually miss it, so the estimate runs
    low. As a share of the estimate: `top_share` (w_max over the sum) times that factor, which
    tends to `headroom` as the index reaches 1 and stays finite beyond, thanks to the bound.
    0 when the tail index is unknown.
    """
    if not (math.isfinite(tail) and tail > 0 and math.isfinite(top_share)):
        return 0.0
    headroom = max(0.0, headroom)
    excess = (1 - tail) / tail  # a - 1
    if abs(excess) < 1e-9:
        return top_share * headroom
    return top_share * -math.expm1(-excess * headroom) / (1 - tail)


def tail_index(top: Tensor, draws: int) -> Tensor:
    """Hill estimate of the Pareto tail index of the weights from their largest log values.

    Over the largest M = min(draws / 5, 3 sqrt(draws)) weights (the tail size of Pareto-smoothed
    importance sampling, Vehtari et al. 2024): mean of log(w_(i) / w_(M+1)). Below 1/2 the
    weights have a finite variance and the relative-error estimate can be trusted; above it a
    few unseen large weights may still carry much of p. NaN with too few failing draws.
    """
    size = max(2, int(min(0.2 * draws, 3 * math.sqrt(draws))))
    size = min(size, top.numel() - 1)
    head, edge = top[:size], top[size]
    hill = (head - edge).mean()
    return torch.where(torch.isfinite(edge), hill, torch.full_like(hill, math.nan))
