"""Importance sampling with a proposal fitted to the failures that a splitting pilot finds."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.monte_carlo import next_batch
from robustness_checks.failure_probability.proposal import (
    competing_classes,
    fit_components,
    fit_proposal,
)
from robustness_checks.failure_probability.result import (
    NoiseEstimate,
    from_log,
    history_point,
    lognormal_interval,
)
from robustness_checks.failure_probability.splitting import (
    SubsetRun,
    _no_failure_bound,
    level_samples,
    subset_run,
)


def importance(
    oracle: MarginOracle,
    *,
    relative_error: float,
    max_evaluations: int,
    confidence: float,
    batch_size: int,
    generator: torch.Generator,
    alpha: float = 0.1,
    pilot_samples: int = 500,
    p0: float = 0.1,
    rho: float = 0.8,
    gradient_samples: int = 200,
    min_ess: float = 50.0,
    adapt_rounds: int = 2,
    adapt_draws: int = 1000,
    max_pilots: int = 3,
    max_tail: float = 0.5,
    fit_options: dict[str, Any] | None = None,
    min_draws: int = 0,
    inflate: float = 1.2,
) -> NoiseEstimate:
    """Splitting pilot -> mixture proposal -> adaptation rounds -> sequential IS batches.

    The proposal is first fitted to the pilot's last level, then refitted `adapt_rounds` times
    (cross-entropy: per-class weighted means, covariances and shares) to the weighted failures
    of `adapt_draws` draws from the current proposal. Those draws only shape the proposal;
    the estimate uses the draws from the final, fixed proposal alone, so it is unbiased.

    p_hat = (1/n) sum_i 1_F(u_i) w_i with log w_i = log N(u_i; 0, I) - log q(u_i), summed with
    logsumexp in float64. RE^2 = (n sum w^2 / (sum w)^2 - 1) / n over failing draws (the
    sample variance of the weighted indicator over n p_hat^2), ESS = (sum w)^2 / sum w^2 (Kong).
    Stops when RE <= target, ESS >= `min_ess` and the weights' tail index (see `tail_index`) is
    below `max_tail`, or when the budget is spent; only then is the result converged. The
    interval is log-normal from RE; the weights are bounded by 1 / alpha, so their variance is
    finite, but with a heavy tail RE is underestimated until that tail has been sampled.
    """
    reserve = min(max_evaluations // 2, gradient_samples + adapt_rounds * adapt_draws + batch_size)
    runs = _pilots(
        oracle,
        samples=level_samples(pilot_samples, oracle.dim),
        p0=p0,
        rho=rho,
        budget=max_evaluations - reserve,
        extra_budget=max_evaluations // 2,
        generator=generator,
        max_pilots=max_pilots,
    )
    details: dict[str, Any] = {
        "pilots": [
            {
                "probability": math.exp(run.log_p),
                "relative_error": math.sqrt(run.cov2),
                "evaluations": run.evaluations,
                "levels": run.levels,
            }
            for run in runs
        ],
        "interval": "log-normal from RE",
    }
    if not math.isfinite(runs[0].log_p):
        return _no_failure_bound(runs[0], oracle, confidence, [], details, "importance")
    before = oracle.evaluations
    proposal, subspace = fit_proposal(
        oracle,
        torch.cat([run.samples for run in runs]),
        torch.cat([run.margins for run in runs]),
        torch.cat([run.winners for run in runs]),
        alpha=alpha,
        gradients=gradient_samples,
        inflate=inflate,
        **(fit_options or {}),
    )
    for _ in range(adapt_rounds):
        size = min(adapt_draws, (max_evaluations - oracle.evaluations) // 2)
        if size < 10:
            break
        parts = []
        for chunk in oracle.chunk_sizes(size):
            noise, log_w = proposal.sample(chunk, generator)
            margin, winner = oracle.evaluate(noise)
            parts.append((proposal.project(noise), margin, winner, log_w))
        y, margin, winner, log_w = (torch.cat(column) for column in zip(*parts, strict=True))
        if bool((margin <= 0).any()):
            proposal = fit_components(
                y,
                margin,
                winner,
                proposal.basis,
                alpha=alpha,
                log_weights=log_w,
                inflate=inflate,
            )
    details["proposal"] = {**proposal.summary(), **subspace}
    details["proposal_evaluations"] = oracle.evaluations - before
    keep = max(16, int(3 * math.sqrt(max_evaluations)) + 1)
    device = oracle.device
    lse1 = torch.full((), -math.inf, dtype=torch.float64, device=device)
    lse2 = lse1.clone()
    top = lse1.new_full((keep,), -math.inf)
    failures = torch.zeros((), dtype=torch.int64, device=device)
    draws, history = 0, []
    log_p, error, ess, tail = -math.inf, math.inf, 0.0, math.nan
    while (size := next_batch(draws, batch_size, max_evaluations - oracle.evaluations)) > 0:
        for chunk in oracle.chunk_sizes(size):
            noise, log_w = proposal.sample(chunk, generator)
            margin, _ = oracle.evaluate(noise)
            fail = margin <= 0
            log_w = log_w.masked_fill(~fail, -math.inf)
            lse1 = torch.logaddexp(lse1, torch.logsumexp(log_w, 0))
            lse2 = torch.logaddexp(lse2, torch.logsumexp(2 * log_w, 0))
            top = torch.cat([top, log_w]).topk(keep).values
            failures += fail.sum()
        draws += size
        l1, l2, tail = torch.stack([lse1, lse2, tail_index(top, draws)]).tolist()
        if not math.isfinite(l1):
            continue
        log_p = min(0.0, l1 - math.log(draws))
        error = math.sqrt(max(0.0, math.expm1(l2 - 2 * l1 + math.log(draws))) / draws)
        ess = math.exp(2 * l1 - l2)
        ci = lognormal_interval(log_p, error, confidence)
        history.append({**history_point(oracle.evaluations, log_p, error, ci), "ess": ess})
        if error <= relative_error and ess >= min_ess and tail < max_tail and draws >= min_draws:
            break
    details.update(
        draws=draws, failures=int(failures), min_ess=min_ess, tail_index=tail, max_tail=max_tail
    )
    reliable = ess >= min_ess and tail < max_tail
    if not math.isfinite(log_p):
        # The proposal never hit the failure set: fall back to the pilot's own estimate.
        details["fallback"] = "splitting pilot"
        log_p, error = runs[0].log_p, math.sqrt(runs[0].cov2)
    return from_log(
        "importance",
        log_p,
        error,
        lognormal_interval(log_p, error, confidence),
        target=relative_error if reliable else -1.0,
        confidence=confidence,
        evaluations=oracle.evaluations,
        ess=ess,
        history=history,
        details=details,
    )


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


def _pilots(
    oracle: MarginOracle,
    *,
    samples: int,
    p0: float,
    rho: float,
    budget: int,
    extra_budget: int,
    generator: torch.Generator,
    max_pilots: int,
    min_cluster: int = 10,
) -> list[SubsetRun]:
    """Independent splitting runs that look for the classes the model fails towards.

    One run when a single class competes (as for two classes). When several do, a run's last
    level holds them in proportions that drift from run to run and can lose a class entirely,
    so further runs follow, within `extra_budget` in all, until one finds no new class.
    """
    start = oracle.evaluations
    runs: list[SubsetRun] = []
    seen: set[int] = set()
    while len(runs) < max_pilots:
        spent = oracle.evaluations - start
        remaining = (extra_budget if runs else budget) - spent
        if runs and max(run.evaluations for run in runs) > remaining:
            break
        size = min(samples, remaining)
        if size < 10:
            break
        run = subset_run(
            oracle, samples=size, p0=p0, rho=rho, budget=remaining, generator=generator
        )
        if runs and not math.isfinite(run.log_p):
            break
        runs.append(run)
        if not math.isfinite(run.log_p):
            break
        classes = set(competing_classes(run.margins, run.winners, min_cluster))
        new = classes - seen
        seen |= classes
        if len(seen) <= 1 or (len(runs) > 1 and not new):
            break
    return runs
