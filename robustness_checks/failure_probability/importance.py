"""Importance sampling with a mixture proposal started at each class's design point."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from robustness_checks.failure_probability.design_points import DesignPoints, design_points
from robustness_checks.failure_probability.draw_pool import DrawPool
from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.monte_carlo import next_batch
from robustness_checks.failure_probability.pilots import (
    class_pilots,
    pilot_estimate,
    pilot_summary,
    share_log_weights,
)
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
    SubsetRun,
    _no_failure_bound,
    level_samples,
)
from robustness_checks.failure_probability.weight_diagnostics import (
    diagnose,
    moments_estimate,
    tail_allowance,
    tail_index,
    tail_too_heavy,
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
    design_draws: int = 300,
    shrink: float = 0.85,
    max_pull: float = 0.7,
) -> NoiseEstimate:
    """Design points -> mixture proposal -> cross-entropy rounds -> sequential IS batches.

    A batched minimum-norm search finds, for every class, the most likely noise at which it
    overtakes the label, and further local design points (see `design_points`); draws from
    unit-covariance components there, weighted, seed the proposal (see
    `proposal.SubspaceMixture`: Student-t components with `dof` degrees of freedom in the
    subspace of the design points and margin gradients, nominal share `alpha`), which
    cross-entropy rounds refit to the weighted failures of all draws so far (`DrawPool`) until
    the class shares settle (see `_adapt`); the final proposal's means are then pulled towards
    the origin by the factor `shrink`, by at most `max_pull` (see `SubspaceMixture.shrunk`),
    because failure blurred by the directions outside the subspace makes cross-entropy's
    moment match overshoot the variance-optimal position. Without usable gradients (no
    design point, or no failing draw there) one splitting run per competing class seeds it
    instead (see `pilots.class_pilots`). Those draws only shape the proposal; the estimate
    uses the draws from the final, fixed proposal alone, so it is unbiased.

    p_hat = (1/n) sum_i 1_F(u_i) w_i with log w_i = log N(u_i; 0, I) - log q(u_i), summed with
    logsumexp in float64; relative error and ESS as in `weight_diagnostics.moments_estimate`.
    Stops when RE <= target, ESS >= `min_ess`, at least `min_draws` draws were made and the
    weights are not too heavy-tailed (see `weight_diagnostics.tail_too_heavy`), or when the
    budget is spent. The interval is log-normal from RE. `unreliable` lists what
    `weight_diagnostics.diagnose` found wrong with the error estimate (few effective draws, a
    heavy tail, disagreement with the last adaptation round's independent estimate); the
    result is converged only without any.
    """
    details: dict[str, Any] = {"interval": "log-normal from RE"}
    before = oracle.evaluations
    start = _design_start(
        oracle,
        generator,
        details,
        max_classes=max_classes,
        alpha=alpha,
        dof=dof,
        draws=min(max_evaluations // 4, design_draws * max_classes),
    )
    if start is None:
        reserve = min(
            max_evaluations // 2, gradient_samples + adapt_rounds * adapt_draws + batch_size
        )
        runs = class_pilots(
            oracle,
            samples=level_samples(pilot_samples, oracle.dim),
            p0=p0,
            rho=rho,
            budget=max_evaluations - reserve,
            generator=generator,
            max_classes=max_classes,
        )
        details["pilots"] = [pilot_summary(run) for run in runs]
        if not any(math.isfinite(run.log_p) for run in runs):
            # A run's last level bounds only its own class's share: with several, only the
            # Clopper-Pearson limit from the shared iid draws bounds p.
            bounding = runs[0] if len(runs) == 1 else dataclasses.replace(runs[0], levels=[])
            return _no_failure_bound(bounding, oracle, confidence, [], details, "importance")
        start = Start.from_runs(runs)
    samples, margins, winners, log_w, found, located, mixture = start
    proposal, subspace = fit_proposal(
        oracle,
        samples,
        margins,
        winners,
        alpha=alpha,
        gradients=gradient_samples,
        inflate=inflate,
        dof=dof,
        log_weights=log_w,
        points=located,
        **(fit_options or {}),
    )
    pool = DrawPool(proposal.basis, start=mixture)
    if mixture is not None:
        pool.add(mixture, samples, margins, winners)
    proposal, replicate = _adapt(
        proposal,
        oracle,
        pool,
        generator=generator,
        budget=max_evaluations,
        rounds=adapt_rounds,
        draws=adapt_draws,
        draws_per_component=adapt_draws_per_component,
        alpha=alpha,
        inflate=inflate,
        dof=dof,
    )
    proposal = proposal.shrunk(shrink, max_pull)
    details["proposal"] = {**proposal.summary(), **subspace, "shrink": [shrink, max_pull]}
    details["proposal_evaluations"] = oracle.evaluations - before
    keep = max(16, int(3 * math.sqrt(max_evaluations)) + 1)
    device = oracle.device
    lse1 = torch.full((), -math.inf, dtype=torch.float64, device=device)
    lse2, lse4 = lse1.clone(), lse1.clone()
    top = lse1.new_full((keep,), -math.inf)
    failures = torch.zeros((), dtype=torch.int64, device=device)
    draws, history = 0, []
    log_p, error, ess, tail, top_share, largest = -math.inf, math.inf, 0.0, math.nan, 1.0, 0.0
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
        l1, l2, l4, tail, largest = torch.stack(
            [lse1, lse2, lse4, tail_index(top, draws), top[0]]
        ).tolist()
        if not math.isfinite(l1):
            continue
        log_p, error, ess = moments_estimate(l1, l2, l4, draws)
        ci = lognormal_interval(log_p, error, confidence)
        history.append({**history_point(oracle.evaluations, log_p, error, ci), "ess": ess})
        top_share = math.exp(largest - l1)
        heavy = tail_too_heavy(tail, ess, top_share, min_ess=min_ess, max_tail=max_tail)
        if error <= relative_error and ess >= min_ess and not heavy and draws >= min_draws:
            break
    details.update(
        draws=draws, failures=int(failures), min_ess=min_ess, tail_index=tail, max_tail=max_tail
    )
    details["largest_weight_share"] = top_share
    unreliable = diagnose(
        log_p, error, ess, tail, top_share, replicate, min_ess=min_ess, max_tail=max_tail
    )
    details["replicate"] = replicate
    if not math.isfinite(log_p) and found:
        # The proposal never hit the failure set: fall back to the pilot's own estimate.
        details["fallback"] = "splitting pilots"
        log_p, error = pilot_estimate(found)
        unreliable = ["the proposal never drew a failure; the estimate is the pilots' own"]
    details["unreliable"] = unreliable
    low, high = lognormal_interval(log_p, error, confidence)
    # A heavy-tailed sum runs low: the upper limit adds the mass its tail puts beyond the
    # largest weight drawn (weights are at most 1 / alpha).
    headroom = -math.log(alpha) - largest if alpha > 0 else math.inf
    allowance = tail_allowance(tail, top_share, headroom)
    details["tail_allowance"] = allowance
    return from_log(
        "importance",
        log_p,
        error,
        (low, min(1.0, high * (1 + allowance))),
        target=relative_error,
        unreliable=unreliable,
        confidence=confidence,
        evaluations=oracle.evaluations,
        ess=ess,
        history=history,
        details=details,
    )


class Start(NamedTuple):
    """Weighted draws near the failure set that the first proposal is fitted to."""

    samples: Tensor
    margins: Tensor
    winners: Tensor
    log_weights: Tensor
    runs: list[SubsetRun]
    points: list[tuple[int, Tensor]]
    mixture: SubspaceMixture | None = None  # what drew the samples, when they come from one

    @classmethod
    def from_runs(cls, runs: list[SubsetRun]) -> Start:
        """The last levels of splitting pilots, each run's failures given its share of p."""
        return cls(
            torch.cat([run.samples for run in runs]),
            torch.cat([run.margins for run in runs]),
            torch.cat([run.winners for run in runs]),
            share_log_weights(runs),
            [run for run in runs if math.isfinite(run.log_p)],
            [],
        )


def _design_start(
    oracle: MarginOracle,
    generator: torch.Generator,
    details: dict[str, Any],
    *,
    max_classes: int,
    alpha: float,
    dof: int | None,
    draws: int,
) -> Start | None:
    """Draws from unit-covariance components at each class's design point (None when no
    design point is found or none of the draws fails)."""
    points = design_points(
        oracle, generator=generator, classes=oracle.num_classes, max_classes=max_classes
    )
    if points is None:
        return None
    details["design_points"] = [
        {"class": cls, "beta": beta, "form_probability": form}
        for cls, beta, form in zip(
            points.classes, points.betas, points.form_probabilities(), strict=True
        )
    ]
    count = min(draws, draws * len(points.classes) // max_classes)
    mixture = _design_mixture(points, alpha=alpha, dof=dof)
    drawn = _draw(mixture, oracle, generator, count)
    if not bool((drawn[1] <= 0).any()):
        return None
    located = list(zip(points.classes, points.points, strict=True))
    return Start(*drawn, runs=[], points=located, mixture=mixture)


def _heaviest(
    y: Tensor, winner: Tensor, failing_log_w: Tensor, heavy: float
) -> list[tuple[int, Tensor]]:
    """The failing draw of largest weight as a new centre, when that weight is over `heavy`
    times the mean failing weight (a failure lobe the components do not cover yet)."""
    count = int(torch.isfinite(failing_log_w).sum())
    if count < 2:
        return []
    top = int(failing_log_w.argmax())
    mean = float(torch.logsumexp(failing_log_w, 0)) - math.log(count)
    if float(failing_log_w[top]) - mean < math.log(heavy):
        return []
    return [(int(winner[top]), y[top])]


def _design_mixture(points: DesignPoints, *, alpha: float, dof: int | None) -> SubspaceMixture:
    """Unit-covariance components at the design points, shares from their FORM estimates."""
    basis, _ = torch.linalg.qr(points.points.T.double())
    basis = basis.to(points.points.dtype)
    forms = torch.tensor(points.form_probabilities(), dtype=torch.float64)
    rank = basis.shape[1]
    eye = torch.eye(rank, dtype=torch.float64, device=basis.device)
    return SubspaceMixture(
        basis=basis,
        means=(points.points @ basis).double(),
        chols=eye.expand(len(points.classes), rank, rank).clone(),
        weights=(forms / forms.sum()).clamp(min=0.05).to(basis.device),
        alpha=alpha,
        classes=points.classes,
        dof=dof,
    )


def _draw(
    proposal: SubspaceMixture, oracle: MarginOracle, generator: torch.Generator, count: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`count` draws from `proposal`: noise, margins, winners and log weights."""
    parts = []
    for chunk in oracle.chunk_sizes(count):
        noise, log_w = proposal.sample(chunk, generator)
        margin, winner = oracle.evaluate(noise)
        parts.append((noise, margin, winner, log_w))
    noise, margin, winner, log_w = (torch.cat(column) for column in zip(*parts, strict=True))
    return noise, margin, winner, log_w


def _adapt(
    proposal: SubspaceMixture,
    oracle: MarginOracle,
    pool: DrawPool,
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
    heavy: float = 20.0,
) -> tuple[SubspaceMixture, dict[str, float] | None]:
    """Cross-entropy refits of the mixture to the weighted failing draws of every round so far.

    Each round draws max(`draws`, `draws_per_component` per component) from the current
    proposal, adds them to `pool` and refits per-class means, covariances and shares to the
    whole pool under its deterministic-mixture weights (see `DrawPool`). After `min_rounds`,
    it stops once the class shares move by less than `settled` (total variation): with
    several classes the starting shares are off by tens of percent, and a class given too
    small a share gets weights far above p where it fails. Also returns the
    last round's own importance estimate (log p, relative error), a replicate independent of
    the final draws. A failing draw whose weight exceeds `heavy` times the mean failing weight
    lies where the proposal is thin: it becomes a centre of its own (see `_heaviest`).
    """
    replicate = None
    for round_ in range(rounds):
        size = max(draws, draws_per_component * len(proposal.classes))
        size = min(size, (budget - oracle.evaluations) // 2)
        if size < 10:
            break
        noise, margin, winner, log_w = _draw(proposal, oracle, generator, size)
        y = pool.add(proposal, noise, margin, winner)
        if not bool((margin <= 0).any()):
            continue
        failing = log_w.masked_fill(margin > 0, -math.inf)
        l1, l2, l4 = (float(torch.logsumexp(k * failing, 0)) for k in (1, 2, 4))
        log_p, error, _ = moments_estimate(l1, l2, l4, size)
        replicate = {"log_p": log_p, "relative_error": error}
        previous = proposal.shares()
        proposal = fit_components(
            pool.y,
            pool.margins,
            pool.winners,
            proposal.basis,
            alpha=alpha,
            log_weights=pool.log_weights(),
            centres=proposal.centres() + _heaviest(y, winner, failing, heavy),
            inflate=inflate,
            dof=dof,
        )
        current = proposal.shares()
        moved = sum(abs(current.get(c, 0.0) - previous.get(c, 0.0)) for c in {*current, *previous})
        if round_ + 1 >= min_rounds and moved / 2 < settled:
            break
    return proposal, replicate
