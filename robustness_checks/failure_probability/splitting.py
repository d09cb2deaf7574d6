"""Subset simulation (adaptive multilevel splitting) on the classification margin."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.result import (
    NoiseEstimate,
    from_log,
    history_point,
    lognormal_interval,
    no_failure,
)
from robustness_checks.metrics.intervals import clopper_pearson

# Samples per level are capped so that one level's states stay within this many elements.
MAX_STATE_ELEMENTS = 1 << 26
TARGET_ACCEPTANCE = 0.4


@dataclass
class SubsetRun:
    """One subset-simulation run; `log_p` is -inf when its last level held no failure."""

    log_p: float
    cov2: float
    reached: bool
    evaluations: int
    iid_draws: int
    level_log_p: float
    level_cov2: float
    samples: Tensor
    margins: Tensor
    winners: Tensor
    levels: list[dict[str, Any]] = field(default_factory=list)
    target: int | None = None


def _chain_gamma(hits: Tensor) -> Tensor:
    """Au and Beck's correlation factor gamma from indicators of shape (chains, length)."""
    length = hits.shape[1]
    p = hits.mean()
    r0 = p * (1 - p)
    if length < 2:
        return torch.zeros((), dtype=hits.dtype, device=hits.device)
    lags = [(hits[:, :-k] * hits[:, k:]).mean() - p * p for k in range(1, length)]
    weights = 1 - torch.arange(1, length, dtype=hits.dtype, device=hits.device) / length
    gamma = 2 * (weights * torch.stack(lags)).sum() / r0.clamp(min=1e-300)
    return torch.where(r0 > 0, gamma.clamp(min=0.0), torch.zeros_like(gamma))


def level_samples(samples: int, dim: int) -> int:
    """Samples per level, capped so that a level's states fit MAX_STATE_ELEMENTS."""
    return max(10, min(int(samples), MAX_STATE_ELEMENTS // max(1, dim)))


def subset_run(
    oracle: MarginOracle,
    *,
    samples: int,
    p0: float,
    rho: float,
    budget: int,
    generator: torch.Generator,
    target: int | None = None,
    initial: tuple[Tensor, Tensor, Tensor] | None = None,
) -> SubsetRun:
    """One run: levels at the p0 quantile of the margin until a level is <= 0 or budget ends.

    Each level keeps the round(samples * p0) draws with the smallest margins as seeds (more on
    ties) and grows a chain from each by preconditioned Crank-Nicolson moves
    u' = rho u + sqrt(1 - rho^2) xi, accepted when the margin stays <= the level. The moves
    leave N(0, I) restricted to the level set invariant. `rho` adapts between levels towards
    an acceptance rate of 0.4.

    With a `target` class the run follows the part of the failure set that this class wins:
    draws won by another class score +inf, so it estimates P(margin <= 0, winner = target).
    `initial` (noise, margins, winners) is a first level of iid N(0, I) draws already
    evaluated, so that runs for several targets can share it.
    """
    start = oracle.evaluations
    device, dtype = oracle.device, oracle.dtype
    if initial is None:
        u = torch.randn((samples, oracle.dim), generator=generator, device=device, dtype=dtype)
        margins, winners = oracle.evaluate(u)
    else:
        u, margins, winners = initial
        samples = u.shape[0]
    scores = _score(margins, winners, target)
    chains = scores.view(samples, 1)
    seeds_wanted = max(1, round(samples * p0))
    log_p, cov2, previous = 0.0, 0.0, math.inf
    levels: list[dict[str, Any]] = []
    acceptance = math.nan
    while True:
        count = scores.shape[0]
        threshold = scores.kthvalue(min(seeds_wanted, count)).values
        # A target class may win fewer than seeds_wanted draws: then all of them are seeds.
        highest = scores.masked_fill(scores == math.inf, -math.inf).max()
        threshold = torch.where(threshold == math.inf, highest, threshold)
        hits_level = (chains <= threshold).to(torch.float64)
        hits_fail = (chains <= 0).to(torch.float64)
        stats = torch.stack(
            [
                threshold.double(),
                hits_level.sum(),
                _chain_gamma(hits_level),
                hits_fail.sum(),
                _chain_gamma(hits_fail),
            ]
        ).tolist()
        b, seeds, gamma_level, failures, gamma_fail = stats
        seeds = int(seeds)
        length = max(2, math.ceil(samples / max(1, seeds)))
        cost = seeds * (length - 1)
        spent = oracle.evaluations - start
        if b <= 0 or b >= previous or spent + cost > budget or seeds == 0:
            break
        p_level = seeds / count
        log_p += math.log(p_level)
        cov2 += (1 - p_level) / (count * p_level) * (1 + gamma_level)
        levels.append(
            {
                "threshold": b,
                "probability": p_level,
                "gamma": gamma_level,
                "acceptance": acceptance,
                "rho": rho,
                "evaluations": spent,
            }
        )
        previous = b
        order = torch.argsort(scores, stable=True)[:seeds]
        state, state_margin, state_winner = u[order], margins[order], winners[order]
        path, path_margin, path_winner = [state], [state_margin], [state_winner]
        accepted = torch.zeros((), dtype=torch.int64, device=device)
        step = math.sqrt(1 - rho * rho)
        for _ in range(length - 1):
            noise = torch.randn(state.shape, generator=generator, device=device, dtype=dtype)
            candidate = rho * state + step * noise
            cand_margin, cand_winner = oracle.evaluate(candidate)
            accept = _score(cand_margin, cand_winner, target) <= threshold
            accepted += accept.sum()
            state = torch.where(accept[:, None], candidate, state)
            state_margin = torch.where(accept, cand_margin, state_margin)
            state_winner = torch.where(accept, cand_winner, state_winner)
            path.append(state)
            path_margin.append(state_margin)
            path_winner.append(state_winner)
        u = torch.stack(path, dim=1).reshape(-1, oracle.dim)
        margins = torch.stack(path_margin, dim=1).reshape(-1)
        winners = torch.stack(path_winner, dim=1).reshape(-1)
        scores = _score(margins, winners, target)
        chains = scores.view(seeds, length)
        acceptance = float(accepted) / cost
        rho = _adapt(rho, acceptance)
    count = scores.shape[0]
    level_log_p, level_cov2 = log_p, cov2
    if failures > 0:
        p_last = failures / count
        log_p += math.log(p_last)
        cov2 += (1 - p_last) / (count * p_last) * (1 + gamma_fail)
    else:
        log_p = -math.inf
    levels.append(
        {
            "threshold": 0.0,
            "probability": failures / count,
            "gamma": gamma_fail,
            "acceptance": acceptance,
            "rho": rho,
            "evaluations": oracle.evaluations - start,
        }
    )
    return SubsetRun(
        log_p=log_p,
        cov2=cov2,
        reached=b <= 0 and seeds > 0,
        evaluations=oracle.evaluations - start,
        iid_draws=samples,
        level_log_p=level_log_p,
        level_cov2=level_cov2,
        samples=u,
        margins=margins,
        winners=winners,
        levels=levels,
        target=target,
    )


def _score(margins: Tensor, winners: Tensor, target: int | None) -> Tensor:
    """The level statistic: the margin, or +inf where a class other than `target` wins."""
    if target is None:
        return margins
    return margins.masked_fill(winners != target, math.inf)


def _adapt(rho: float, acceptance: float) -> float:
    """Shrink or widen the pCN step sqrt(1 - rho^2) towards the target acceptance rate."""
    step = math.sqrt(1 - rho * rho) * math.exp(acceptance - TARGET_ACCEPTANCE)
    step = min(0.95, max(0.05, step))
    return math.sqrt(1 - step * step)


def combine_runs(runs: list[SubsetRun]) -> tuple[float, float]:
    """Mean of independent runs in log space, and its relative error.

    The relative error is the larger of Au and Beck's per-run formula (chain correlation
    included, correlation between levels not) and, from two runs on, the spread between runs.
    """
    logs = torch.tensor([run.log_p for run in runs], dtype=torch.float64)
    log_mean = float(torch.logsumexp(logs, 0)) - math.log(len(runs))
    ratios = torch.exp(logs - log_mean)
    cov2 = torch.tensor([run.cov2 for run in runs], dtype=torch.float64)
    error2 = float((cov2 * ratios**2).sum()) / len(runs) ** 2
    if len(runs) >= 2:
        error2 = max(error2, float(ratios.var()) / len(runs))
    return log_mean, math.sqrt(error2)


def splitting(
    oracle: MarginOracle,
    *,
    relative_error: float,
    max_evaluations: int,
    confidence: float,
    generator: torch.Generator,
    samples_per_level: int = 1000,
    p0: float = 0.1,
    rho: float = 0.8,
    min_runs: int = 3,
) -> NoiseEstimate:
    """Independent subset-simulation runs, averaged, until the relative error target or budget.

    A new run starts only while the remaining budget covers the most expensive run so far.
    The interval is log-normal around the mean with the combined relative error.
    """
    samples = level_samples(samples_per_level, oracle.dim)
    runs: list[SubsetRun] = []
    history: list[dict[str, Any]] = []
    first: SubsetRun | None = None
    log_p, error = -math.inf, math.inf
    while True:
        remaining = max_evaluations - oracle.evaluations
        if runs and max(run.evaluations for run in runs) > remaining:
            break
        size = min(samples, remaining)
        if size < 10 or (first is not None and size < samples):
            break
        run = subset_run(
            oracle, samples=size, p0=p0, rho=rho, budget=remaining, generator=generator
        )
        first = first or run
        if not run.reached and runs:
            break
        runs.append(run)
        if not run.reached:
            break
        log_p, error = combine_runs(runs)
        ci = lognormal_interval(log_p, error, confidence)
        history.append(history_point(oracle.evaluations, log_p, error, ci))
        # Au and Beck's formula is exact for a single level (plain Monte Carlo) but ignores the
        # correlation between levels; with more levels the spread between runs must confirm it.
        enough = len(runs) >= min_runs or len(run.levels) == 1
        if error <= relative_error and enough:
            break
    details: dict[str, Any] = {
        "runs": len(runs),
        "samples_per_level": samples,
        "p0": p0,
        "run_probabilities": [math.exp(run.log_p) for run in runs],
        "levels": first.levels if first else [],
        "interval": "log-normal from the relative error",
    }
    if first is None or not math.isfinite(runs[0].log_p):
        return _no_failure_bound(first, oracle, confidence, history, details, "splitting")
    if not runs[0].reached:
        log_p, error = runs[0].log_p, math.sqrt(runs[0].cov2)
        history.append(
            history_point(
                oracle.evaluations, log_p, error, lognormal_interval(log_p, error, confidence)
            )
        )
    return from_log(
        "splitting",
        log_p,
        error,
        lognormal_interval(log_p, error, confidence),
        target=relative_error,
        reliable=len(runs) >= min_runs or len(runs[0].levels) == 1,
        confidence=confidence,
        evaluations=oracle.evaluations,
        ess=None,
        history=history,
        details=details,
    )


def _no_failure_bound(
    run: SubsetRun | None,
    oracle: MarginOracle,
    confidence: float,
    history: list[dict[str, Any]],
    details: dict[str, Any],
    estimator: str,
) -> NoiseEstimate:
    """No failure seen: the smaller of two upper limits, both at `confidence`.

    The Clopper-Pearson upper limit with zero failures in the run's first-level iid draws
    (exact), and the log-normal upper limit of P(margin <= last level reached), which bounds
    p because that level is > 0 (approximate, from the run's own relative error).
    """
    upper = 1.0
    if run is not None:
        upper = clopper_pearson(0, run.iid_draws, confidence)[1]
        if run.levels[:-1]:
            level_error = math.sqrt(run.level_cov2)
            upper = min(upper, lognormal_interval(run.level_log_p, level_error, confidence)[1])
        details["last_level"] = run.levels[-2]["threshold"] if run.levels[:-1] else None
    details["upper_bound"] = "min(Clopper-Pearson, log-normal bound of the last level)"
    return no_failure(
        estimator,
        upper=upper,
        confidence=confidence,
        evaluations=oracle.evaluations,
        history=history,
        details=details,
    )
