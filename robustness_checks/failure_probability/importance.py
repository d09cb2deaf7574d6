"""Importance sampling with a proposal fitted to the failures that per-class pilots find."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.monte_carlo import next_batch
from robustness_checks.failure_probability.proposal import (
    SubspaceMixture,
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
    MAX_STATE_ELEMENTS,
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
    adapt_rounds: int = 5,
    adapt_draws: int = 1000,
    adapt_draws_per_component: int = 300,
    max_classes: int = 8,
    max_tail: float = 0.7,
    fit_options: dict[str, Any] | None = None,
    min_draws: int = 3000,
    inflate: float = 1.2,
    dof: int | None = 6,
) -> NoiseEstimate:
    """Class pilots -> mixture proposal -> cross-entropy rounds -> sequential IS batches.

    One splitting run per competing class (see `_class_pilots`) finds the failures that class
    wins and estimates its share of p; the proposal (see `proposal.SubspaceMixture`: Student-t
    components with `dof` degrees of freedom in a gradient subspace, nominal share `alpha`) is
    fitted to them and refitted by cross-entropy (see `_adapt`) until its class shares settle.
    Those draws only shape the proposal; the estimate uses the draws from the final, fixed
    proposal alone, so it is unbiased.

    p_hat = (1/n) sum_i 1_F(u_i) w_i with log w_i = log N(u_i; 0, I) - log q(u_i), summed with
    logsumexp in float64. RE^2 = (n sum w^2 / (sum w)^2 - 1) / n over failing draws (the
    sample variance of the weighted indicator over n p_hat^2), widened by the relative
    uncertainty of that variance, sqrt(1 + sqrt(sum w^4) / sum w^2); ESS = (sum w)^2 / sum w^2
    (Kong). Stops when RE <= target, ESS >= `min_ess`, at least `min_draws` draws were made and
    the weights' tail index (see `tail_index`) is below `max_tail`, or when the budget is
    spent; only then is the result converged. The interval is log-normal from RE.
    """
    reserve = min(max_evaluations // 2, gradient_samples + adapt_rounds * adapt_draws + batch_size)
    runs = _class_pilots(
        oracle,
        samples=level_samples(pilot_samples, oracle.dim),
        p0=p0,
        rho=rho,
        budget=max_evaluations - reserve,
        generator=generator,
        max_classes=max_classes,
    )
    details: dict[str, Any] = {
        "pilots": [
            {
                "class": run.target,
                "probability": math.exp(run.log_p),
                "relative_error": math.sqrt(run.cov2),
                "evaluations": run.evaluations,
                "levels": run.levels,
            }
            for run in runs
        ],
        "interval": "log-normal from RE",
    }
    found = [run for run in runs if math.isfinite(run.log_p)]
    if not found:
        # A run's last level bounds only its own class's share: with several, only the
        # Clopper-Pearson limit from the shared iid draws bounds p.
        bounding = runs[0] if len(runs) == 1 else dataclasses.replace(runs[0], levels=[])
        return _no_failure_bound(bounding, oracle, confidence, [], details, "importance")
    before = oracle.evaluations
    proposal, subspace = fit_proposal(
        oracle,
        torch.cat([run.samples for run in runs]),
        torch.cat([run.margins for run in runs]),
        torch.cat([run.winners for run in runs]),
        alpha=alpha,
        gradients=gradient_samples,
        inflate=inflate,
        dof=dof,
        log_weights=_share_log_weights(runs),
        **(fit_options or {}),
    )
    proposal = _adapt(
        proposal,
        oracle,
        generator=generator,
        budget=max_evaluations,
        rounds=adapt_rounds,
        draws=adapt_draws,
        draws_per_component=adapt_draws_per_component,
        alpha=alpha,
        inflate=inflate,
        dof=dof,
    )
    details["proposal"] = {**proposal.summary(), **subspace}
    details["proposal_evaluations"] = oracle.evaluations - before
    keep = max(16, int(3 * math.sqrt(max_evaluations)) + 1)
    device = oracle.device
    lse1 = torch.full((), -math.inf, dtype=torch.float64, device=device)
    lse2, lse4 = lse1.clone(), lse1.clone()
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
            lse4 = torch.logaddexp(lse4, torch.logsumexp(4 * log_w, 0))
            top = torch.cat([top, log_w]).topk(keep).values
            failures += fail.sum()
        draws += size
        l1, l2, l4, tail = torch.stack([lse1, lse2, lse4, tail_index(top, draws)]).tolist()
        if not math.isfinite(l1):
            continue
        log_p = min(0.0, l1 - math.log(draws))
        error = math.sqrt(max(0.0, math.expm1(l2 - 2 * l1 + math.log(draws))) / draws)
        # The variance estimate is itself uncertain (relative sd about sqrt(sum w^4) / sum w^2)
        # and low exactly when the largest weights have not been drawn yet: widen by it.
        error *= math.sqrt(1 + math.exp(l4 / 2 - l2))
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
        details["fallback"] = "splitting pilots"
        log_p, error = _pilot_estimate(found)
    return from_log(
        "importance",
        log_p,
        error,
        lognormal_interval(log_p, error, confidence),
        target=relative_error,
        reliable=reliable,
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


def _adapt(
    proposal: SubspaceMixture,
    oracle: MarginOracle,
    *,
    generator: torch.Generator,
    budget: int,
    rounds: int,
    draws: int,
    draws_per_component: int,
    alpha: float,
    inflate: float,
    dof: int | None,
    min_rounds: int = 2,
    settled: float = 0.1,
) -> SubspaceMixture:
    """Cross-entropy refits of the mixture to its own weighted failing draws.

    Each round draws max(`draws`, `draws_per_component` per component) from the current
    proposal and refits per-class means, covariances and shares. After `min_rounds`, it stops
    once the class shares move by less than `settled` (total variation): with several classes
    the pilot's shares come from one splitting run each and are off by tens of percent, and a
    class given too small a share gets weights far above p where it fails.
    """
    for round_ in range(rounds):
        size = max(draws, draws_per_component * len(proposal.classes))
        size = min(size, (budget - oracle.evaluations) // 2)
        if size < 10:
            break
        parts = []
        for chunk in oracle.chunk_sizes(size):
            noise, log_w = proposal.sample(chunk, generator)
            margin, winner = oracle.evaluate(noise)
            parts.append((proposal.project(noise), margin, winner, log_w))
        y, margin, winner, log_w = (torch.cat(column) for column in zip(*parts, strict=True))
        if not bool((margin <= 0).any()):
            continue
        previous = proposal.shares()
        proposal = fit_components(
            y,
            margin,
            winner,
            proposal.basis,
            alpha=alpha,
            log_weights=log_w,
            inflate=inflate,
            dof=dof,
        )
        current = proposal.shares()
        moved = sum(abs(current.get(c, 0.0) - previous.get(c, 0.0)) for c in {*current, *previous})
        if round_ + 1 >= min_rounds and moved / 2 < settled:
            break
    return proposal


def _pilot_estimate(runs: list[SubsetRun]) -> tuple[float, float]:
    """Sum of the class runs' estimates, and its relative error (runs are independent)."""
    logs = torch.tensor([run.log_p for run in runs], dtype=torch.float64)
    log_p = float(torch.logsumexp(logs, 0))
    shares = torch.exp(logs - log_p)
    cov2 = torch.tensor([run.cov2 for run in runs], dtype=torch.float64)
    return log_p, math.sqrt(float((shares**2 * cov2).sum()))


def _share_log_weights(runs: list[SubsetRun]) -> Tensor:
    """Per-sample log weights giving each run's failures its estimated share of p."""
    parts = []
    for run in runs:
        failing = int((run.margins <= 0).sum())
        log_share = run.log_p - math.log(max(1, failing))
        parts.append(
            torch.full(run.margins.shape, log_share, dtype=torch.float64, device=run.margins.device)
        )
    return torch.cat(parts)


def _class_pilots(
    oracle: MarginOracle,
    *,
    samples: int,
    p0: float,
    rho: float,
    budget: int,
    generator: torch.Generator,
    max_classes: int,
    min_count: int = 2,
) -> list[SubsetRun]:
    """One splitting run per competing class, from one shared level of iid draws.

    A single run drifts: each level keeps a few dozen seeds, so a class that wins a few
    percent of the failures often has none left at the last level, the proposal misses it,
    and its failures (weights up to 1 / alpha) are almost never drawn: the estimate comes out
    low with a small reported error. Here each class that wins at least `min_count` of the
    iid draws (at most `max_classes`; see `_candidate_classes`) gets its own run on the
    failures it wins; the runs' estimates of P(fail, winner = class) set the mixture's shares.
    """
    start = oracle.evaluations
    u = torch.randn(
        (samples, oracle.dim), generator=generator, device=oracle.device, dtype=oracle.dtype
    )
    margins, winners = oracle.evaluate(u)
    runs = []
    for cls in _candidate_classes(margins, winners, min_count, max_classes):
        remaining = budget - (oracle.evaluations - start)
        if runs and max(run.evaluations for run in runs) > remaining:
            break
        run = subset_run(
            oracle,
            samples=samples,
            p0=p0,
            rho=rho,
            budget=remaining,
            generator=generator,
            target=cls,
            initial=(u, margins, winners),
        )
        runs.append(_trimmed(run))
    return runs


def _candidate_classes(
    margins: Tensor, winners: Tensor, min_count: int, max_classes: int
) -> list[int]:
    """Classes winning at least `min_count` iid draws, most frequent in the lowest fifth first.

    The class that dominates the failures need not dominate near the typical noise: on one
    demo-CNN input a class with a fifth of the failures won 2 of the 100 lowest margins of
    1,000 draws, so every class that wins some draws is a candidate.
    """
    size = int(winners.max()) + 1
    lowest = torch.argsort(margins, stable=True)[: max(min_count, margins.numel() // 5)]
    near = torch.bincount(winners[lowest], minlength=size)
    counts = torch.bincount(winners, minlength=size)
    order = torch.argsort(near * (margins.numel() + 1) + counts, descending=True, stable=True)
    classes = [int(c) for c in order[:max_classes] if int(counts[c]) >= min_count]
    return classes or [int(order[0])]


def _trimmed(run: SubsetRun, keep: int = 1000, min_cluster: int = 10) -> SubsetRun:
    """The run with only the last-level samples the proposal is fitted to (bounded memory).

    At most `keep` failing samples, and for large inputs at most a quarter of a level's state
    budget, so that eight classes' samples together stay within two levels' worth.
    """
    keep = max(min_cluster, min(keep, MAX_STATE_ELEMENTS // (4 * run.samples.shape[1])))
    failing = (run.margins <= 0).nonzero().flatten()
    if failing.numel() >= min_cluster:
        picks = failing[
            torch.linspace(0, failing.numel() - 1, min(keep, failing.numel()))
            .round()
            .long()
            .to(failing.device)
        ]
    else:
        picks = torch.argsort(run.margins, stable=True)[:min_cluster]
    return dataclasses.replace(
        run, samples=run.samples[picks], margins=run.margins[picks], winners=run.winners[picks]
    )
