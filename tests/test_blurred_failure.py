"""Importance sampling where failure is blurred by directions outside the proposal's subspace."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from scipy import integrate, stats
from torch import Tensor, nn

from benchmarks.noise_heldout.validate import Row
from robustness_checks.failure_probability import estimate_failure_probability
from robustness_checks.failure_probability.proposal import SubspaceMixture, fit_components

SIGMA = 0.5


class Blurred(nn.Module):
    """Two classes; class 1 wins when u_0 + width * h(u) >= threshold, u = x / SIGMA.

    h is the standardised noise energy of the other coordinates, (|u_rest|^2 - m) / sqrt(2 m):
    its gradient points along u_rest itself, a direction no low-rank subspace holds, so given
    the subspace coordinates failure is a soft probit of width about `width` along u_0, as
    on the batch-norm CNN of the held-out set (there part of the margin's gradient lies
    outside the subspace).
    """

    def __init__(self, dim: int, width: float, threshold: float) -> None:
        super().__init__()
        self.rest, self.width, self.threshold = dim - 1, width, threshold

    def forward(self, x: Tensor) -> Tensor:
        u = x.flatten(1) / SIGMA
        energy = ((u[:, 1:] ** 2).sum(1) - self.rest) / math.sqrt(2 * self.rest)
        margin = self.threshold - u[:, 0] - self.width * energy
        return torch.stack([margin, torch.zeros_like(margin)], dim=1)

    def probability(self) -> float:
        """P(u_0 + width * h >= threshold): u_0 standard normal, |u_rest|^2 chi-square."""
        m, scale = self.rest, math.sqrt(2 * self.rest)

        def density(a: float) -> float:
            level = m + scale * (self.threshold - a) / self.width
            return float(stats.norm.pdf(a) * stats.chi2.sf(level, m))

        return integrate.quad(density, -10, 20, points=[self.threshold], limit=200)[0]


def _runs(model: Blurred, seeds: int, **options) -> Row:
    """The estimates of `seeds` seeds against the model's exact p, as a validation row."""
    results = [
        estimate_failure_probability(
            model,
            torch.zeros(model.rest + 1),
            0,
            sigma=SIGMA,
            relative_error=0.1,
            max_evaluations=100_000,
            generator=torch.Generator().manual_seed(seed),
            **options,
        )
        for seed in range(seeds)
    ]
    return Row({"p": model.probability()}, "importance", results)


def test_pulled_proposal_reports_an_error_that_matches_its_spread() -> None:
    model = Blurred(dim=64, width=0.5, threshold=4.5)
    truth = model.probability()
    assert 3e-5 < truth < 6e-5
    pulled = _runs(model, 20)
    assert pulled.covers >= 17
    assert pulled.spread_over_reported <= 1.5
    mean = statistics.fmean(r.probability for r in pulled.results)
    assert mean == pytest.approx(truth, rel=0.15)
    # The cross-entropy fit alone sits too far out: its reported error understates the
    # spread over seeds several times.
    unpulled = _runs(model, 20, shrink=1.0)
    assert unpulled.spread_over_reported > 2.5


def test_shrunk_scales_means_and_caps_the_move() -> None:
    mixture = SubspaceMixture(
        basis=torch.eye(3)[:, :2],
        means=torch.tensor([[4.0, 0.0], [6.0, 8.0]], dtype=torch.float64),
        chols=torch.eye(2, dtype=torch.float64).expand(2, 2, 2).clone(),
        weights=torch.tensor([0.5, 0.5], dtype=torch.float64),
        alpha=0.1,
        classes=[1, 2],
        dof=6,
    )
    pulled = mixture.shrunk(0.85, at_most=0.7)
    # |4| * 0.15 = 0.6 <= 0.7: scaled; |(6, 8)| = 10, 1.5 > 0.7: moved 0.7 along itself.
    expected = torch.tensor([[3.4, 0.0], [6 * 0.93, 8 * 0.93]], dtype=torch.float64)
    torch.testing.assert_close(pulled.means, expected)
    torch.testing.assert_close(pulled.chols, mixture.chols)
    torch.testing.assert_close(pulled.weights, mixture.weights)


def test_share_floor_is_shared_by_all_components() -> None:
    # One class holds every failure; ten others hold none but are runner-up often enough
    # to get components: together their floors take 0.1, not ten times 0.05.
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(11 * 40, 2, generator=generator, dtype=torch.float64)
    winners = torch.arange(1, 12).repeat_interleave(40)
    margins = torch.where(winners == 1, -1.0, 1.0).double()
    mixture = fit_components(y, margins, winners, torch.eye(2), alpha=0.1)
    shares = mixture.shares()
    assert len(shares) == 11
    for cls in range(2, 12):
        assert shares[cls] == pytest.approx(0.1 / 11 / (1 + 10 * 0.1 / 11))
    assert shares[1] == pytest.approx(1 / (1 + 10 * 0.1 / 11))
