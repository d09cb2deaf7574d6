"""DrawPool: deterministic-mixture weights of draws pooled from several proposals."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from robustness_checks.failure_probability.draw_pool import DrawPool
from robustness_checks.failure_probability.proposal import SubspaceMixture

DIM = 5


def _mixture(basis: torch.Tensor, mean: float, variance: float) -> SubspaceMixture:
    """One Gaussian component at `mean` along every basis direction, nominal share 0.1."""
    rank = basis.shape[1]
    return SubspaceMixture(
        basis=basis,
        means=torch.full((1, rank), mean, dtype=torch.float64),
        chols=math.sqrt(variance) * torch.eye(rank, dtype=torch.float64)[None],
        weights=torch.ones(1, dtype=torch.float64),
        alpha=0.1,
        classes=[1],
    )


def _pooled(seed: int = 0):
    """A start mixture on axis 0 and two adapted ones on axes 0 and 1, with their draws."""
    generator = torch.Generator().manual_seed(seed)
    eye = torch.eye(DIM)
    start = _mixture(eye[:, :1], 2.0, 1.0)
    basis = eye[:, :2].contiguous()
    adapted = [_mixture(basis, 2.5, 0.6), _mixture(basis, 3.0, 0.5)]
    pool = DrawPool(basis, start=start)
    drawn = []
    for source, count in ((start, 3000), (adapted[0], 2000), (adapted[1], 5000)):
        noise, _ = source.sample(count, generator)
        margins = 2.0 - noise[:, 0]  # fails where u_0 >= 2
        pool.add(source, noise, margins, torch.ones(count, dtype=torch.long))
        drawn.append((source, noise))
    return pool, drawn


def test_weights_are_the_balance_heuristic_over_every_source() -> None:
    pool, drawn = _pooled()
    noise = torch.cat([n for _, n in drawn])
    total = noise.shape[0]
    # log q_t / N(0, I) from each source's own full-space density, weighted by its draw share.
    terms = torch.stack(
        [math.log(n.shape[0] / total) - source.log_weight(noise) for source, n in drawn]
    )
    expected = -torch.logsumexp(terms, dim=0)
    torch.testing.assert_close(pool.log_weights(), expected, rtol=0, atol=1e-9)


def test_one_source_keeps_its_own_weights() -> None:
    generator = torch.Generator().manual_seed(1)
    basis = torch.eye(DIM)[:, :2].contiguous()
    proposal = _mixture(basis, 2.0, 0.8)
    pool = DrawPool(basis)
    noise, log_w = proposal.sample(4000, generator)
    pool.add(proposal, noise, torch.zeros(4000), torch.ones(4000, dtype=torch.long))
    # The sampler scores its float64 coordinates, the pool the stored float32 noise.
    torch.testing.assert_close(pool.log_weights(), log_w, rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_pooled_estimate_of_a_half_space_matches_its_closed_form(seed: int) -> None:
    pool, _ = _pooled(seed)
    fails = pool.margins <= 0
    weights = pool.log_weights().exp() * fails
    estimate = float(weights.mean())
    error = float(weights.std() / weights.mean()) / math.sqrt(weights.numel())
    truth = float(stats.norm.sf(2.0))
    assert abs(estimate / truth - 1) < 4 * error, (estimate, truth, error)


def test_a_proposal_on_another_basis_is_refused() -> None:
    pool = DrawPool(torch.eye(DIM)[:, :2].contiguous())
    other = _mixture(torch.eye(DIM)[:, 2:4].contiguous(), 1.0, 1.0)
    noise, _ = other.sample(10, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="share the pool's basis"):
        pool.add(other, noise, torch.zeros(10), torch.ones(10, dtype=torch.long))
