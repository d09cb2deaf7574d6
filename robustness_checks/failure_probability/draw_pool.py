"""Adaptation draws pooled across rounds, weighted as one deterministic mixture."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustness_checks.failure_probability.proposal import SubspaceMixture


class DrawPool:
    """Every draw of the proposal's adaptation, for fitting the next proposal.

    One round's draws alone come from the current proposal, so a failure region it covers
    thinly stays thin: its failures are rarely drawn and weigh much when they are. Pooling
    all rounds (the wide design-point start included) with the deterministic-mixture weight
    log N(u; 0, I) - log sum_t (n_t / n) q_t(u) (the balance heuristic of Veach and Guibas,
    as in adaptive multiple importance sampling, Cornuet et al. 2012) keeps those regions in
    the fit with moderate weights. The pool only shapes the proposal: the estimate uses fresh
    draws from the final one, so it stays unbiased.

    Draws are kept as coordinates on `basis`, the subspace every adapted proposal shares; a
    `start` mixture on another basis is scored when its draws are added, so the pool never
    holds full-size noise.
    """

    def __init__(self, basis: Tensor, start: SubspaceMixture | None = None) -> None:
        self.basis = basis
        self.start = start
        self._sources: list[SubspaceMixture] = []
        self._counts: list[int] = []
        self._y: list[Tensor] = []
        self._margins: list[Tensor] = []
        self._winners: list[Tensor] = []
        self._start_ratios: list[Tensor] = []

    def add(
        self, source: SubspaceMixture, noise: Tensor, margins: Tensor, winners: Tensor
    ) -> Tensor:
        """Add draws (n, dim) made from `source` (the start mixture or one on this pool's
        basis); returns their coordinates on the basis."""
        if source is not self.start and source.basis is not self.basis:
            raise ValueError("pooled proposals must share the pool's basis")
        self._sources.append(source)
        self._counts.append(noise.shape[0])
        y = (noise @ self.basis).double()
        self._y.append(y)
        self._margins.append(margins)
        self._winners.append(winners)
        if self.start is not None:
            self._start_ratios.append(-self.start.log_weight(noise))
        return y

    @property
    def y(self) -> Tensor:
        return torch.cat(self._y)

    @property
    def margins(self) -> Tensor:
        return torch.cat(self._margins)

    @property
    def winners(self) -> Tensor:
        return torch.cat(self._winners)

    def log_weights(self) -> Tensor:
        """log N(u; 0, I) - log of the draw-count-weighted mixture of every source, per draw."""
        y, total = self.y, sum(self._counts)
        start_ratios = torch.cat(self._start_ratios) if self._start_ratios else None
        rows = []
        for source, count in zip(self._sources, self._counts, strict=True):
            # log q_t / N(0, I): the negated log weight under source t.
            ratio = start_ratios if source is self.start else -source.log_weight_at(y)
            rows.append(math.log(count / total) + ratio)
        return -torch.logsumexp(torch.stack(rows), dim=0)
