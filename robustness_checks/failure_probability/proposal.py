"""Defensive Gaussian-mixture proposal in a failure-informed subspace, for importance sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from robustness_checks.failure_probability.margin import MarginOracle


@dataclass
class SubspaceMixture:
    """q(u) = alpha N(0, I) + (1 - alpha) sum_k pi_k q_k(u) on standardized noise u.

    Component k is N(mean_k, cov_k) (or a Student t with `dof` degrees of freedom and that
    scale matrix) on the r coordinates y = basis^T u and N(0, I) on the orthogonal complement,
    so the density ratio to N(0, I) depends on y alone: it stays well-behaved in high
    dimension (noise in a d-dimensional shift would multiply the weights' second moment by
    about exp(d / samples)), and the nominal share alpha bounds every weight by 1 / alpha.
    """

    basis: Tensor  # (dim, r), orthonormal columns
    means: Tensor  # (K, r) float64
    chols: Tensor  # (K, r, r) float64, lower Cholesky factors of the covariances
    weights: Tensor  # (K,) float64, summing to 1
    alpha: float
    classes: list[int]
    # Student-t components with this many degrees of freedom (None: Gaussian). Failures sit
    # further from a class's centre than a Gaussian fitted to them allows often enough that
    # Gaussian tails leave weights of 1e4 times p there; polynomial tails bound them.
    dof: int | None = None

    @property
    def dim(self) -> int:
        return self.basis.shape[0]

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    def _log_shares(self) -> Tensor:
        alpha = self.weights.new_tensor([self.alpha])
        return torch.cat([alpha, (1 - self.alpha) * self.weights]).log()

    def sample(self, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """`count` draws (count, dim) and their log weights log N(0, I) - log q (float64)."""
        device, dtype = self.basis.device, self.basis.dtype
        component = torch.multinomial(
            self._log_shares().exp(), count, replacement=True, generator=generator
        )
        noise = torch.randn((count, self.dim), generator=generator, device=device, dtype=dtype)
        # Row 0 of each table is the nominal component: zero mean, identity covariance.
        eye = torch.eye(self.rank, dtype=torch.float64, device=device)[None]
        means = torch.cat([self.means.new_zeros(1, self.rank), self.means])[component]
        chols = torch.cat([eye, self.chols])[component]
        inside = noise @ self.basis
        spread = (chols @ inside.double()[:, :, None])[:, :, 0]
        if self.dof is not None:
            # t = N(0, S) / sqrt(chi2_dof / dof); the nominal component (0) keeps scale 1.
            chi2 = torch.randn((count, self.dof), generator=generator, device=device).square()
            scale = (self.dof / chi2.sum(dim=1).double()).sqrt()
            spread = spread * torch.where(component > 0, scale, 1.0)[:, None]
        moved = means + spread
        noise = noise + (moved.to(dtype) - inside) @ self.basis.T
        return noise, self.log_weight_at(moved)

    def project(self, noise: Tensor) -> Tensor:
        """Subspace coordinates y = basis^T u of draws (n, dim), as float64."""
        return (noise @ self.basis).double()

    def log_weight(self, noise: Tensor) -> Tensor:
        """log N(u; 0, I) - log q(u) in float64, in log space (never under- or overflows)."""
        return self.log_weight_at(self.project(noise))

    def log_weight_at(self, y: Tensor) -> Tensor:
        """The log weight from subspace coordinates (n, r) alone."""
        centred = (y[None, :, :] - self.means[:, None, :]).transpose(1, 2)
        solved = torch.linalg.solve_triangular(self.chols, centred, upper=False)
        log_det = torch.diagonal(self.chols, dim1=1, dim2=2).log().sum(dim=1)
        distance2 = (solved * solved).sum(dim=1)
        log_ratio = -log_det[:, None] + 0.5 * (y * y).sum(1) - self._log_kernel(distance2)
        shares = self._log_shares()
        nominal = shares[:1, None].expand(1, y.shape[0])
        return -torch.logsumexp(torch.cat([nominal, shares[1:, None] + log_ratio]), dim=0)

    def _log_kernel(self, distance2: Tensor) -> Tensor:
        """-log of a component's density over N(0, I)'s normaliser, from Mahalanobis^2."""
        if self.dof is None:
            return 0.5 * distance2
        nu, r = float(self.dof), float(self.rank)
        constant = math.lgamma((nu + r) / 2) - math.lgamma(nu / 2) - r / 2 * math.log(nu / 2)
        return (nu + r) / 2 * torch.log1p(distance2 / nu) - constant

    def shrunk(self, factor: float, at_most: float) -> SubspaceMixture:
        """The mixture with every component's mean scaled by `factor` but moved by at most
        `at_most` (in nominal standard deviations) towards the origin; shapes kept.

        Cross-entropy matches the moments of the nominal density on the failure set, which is
        close to the variance-optimal proposal only when failure is a sharp function of the
        subspace coordinates. Where the other directions blur it (P(failure | y) a soft probit
        along the mean, as when part of the margin's gradient lies outside the subspace), the
        least-variance proposal that leaves the other directions nominal, proportional to
        N(y; 0, I) sqrt(P(failure | y)), sits nearer the origin: 0.80 to 0.91 of the
        cross-entropy mean for probit widths 0.55 to 0.3 at p ~ 5e-6. On a sharp half-space
        the pull costs a factor of about exp(pull^2) in relative variance: 5.0 to 6.0 at
        beta 4.4 (factor 0.85); at beta 13.2 the cap keeps it at 20 (from 16) instead of 112
        (docs/noise.md).
        """
        norms = self.means.norm(dim=1, keepdim=True).clamp(min=1e-30)
        scale = torch.maximum(torch.full_like(norms, factor), 1 - at_most / norms)
        return replace(self, means=self.means * scale)

    def shares(self) -> dict[int, float]:
        """Each class's share of the non-nominal part of the mixture (its components')."""
        totals: dict[int, float] = {}
        for cls, weight in zip(self.classes, self.weights.tolist(), strict=True):
            totals[cls] = totals.get(cls, 0.0) + weight
        return totals

    def centres(self) -> list[tuple[int, Tensor]]:
        """(class, subspace mean) of every component."""
        return list(zip(self.classes, self.means, strict=True))

    def summary(self) -> dict[str, Any]:
        """Numbers that describe the fitted proposal, for reports."""
        variances = torch.linalg.eigvalsh(self.chols @ self.chols.transpose(1, 2))
        return {
            "alpha": self.alpha,
            "rank": self.rank,
            "dof": self.dof,
            "components": [
                {
                    "class": cls,
                    "weight": float(self.weights[k]),
                    "shift": float(self.means[k].norm()),
                    "variance_range": [float(variances[k].min()), float(variances[k].max())],
                }
                for k, cls in enumerate(self.classes)
            ],
        }


def _directions(grads: Tensor, energy: float, rank: int) -> Tensor:
    """Leading right singular vectors (rows) of normalized gradients holding `energy`."""
    norms = grads.norm(dim=1)
    usable = (norms > 0) & norms.isfinite()
    if not bool(usable.any()):
        return grads.new_zeros(0, grads.shape[1])
    _, singular, vh = torch.linalg.svd(grads[usable] / norms[usable, None], full_matrices=False)
    share = (singular**2).cumsum(0) / (singular**2).sum()
    return vh[: min(rank, int((share < energy).sum()) + 1)]


def competing_classes(margins: Tensor, winners: Tensor, min_cluster: int) -> list[int]:
    """Classes that win at a failing sample, or are runner-up at `min_cluster` or more samples."""
    size = int(winners.max()) + 1
    fail_counts = torch.bincount(winners[margins <= 0], minlength=size)
    all_counts = torch.bincount(winners, minlength=size)
    return ((fail_counts > 0) | (all_counts >= min_cluster)).nonzero().flatten().tolist()


def fit_proposal(
    oracle: MarginOracle,
    samples: Tensor,
    margins: Tensor,
    winners: Tensor,
    *,
    alpha: float,
    gradients: int = 200,
    energy: float = 0.9,
    class_rank: int = 3,
    max_rank: int = 12,
    min_cluster: int = 10,
    points: list[tuple[int, Tensor]] | None = None,
    **options: Any,
) -> tuple[SubspaceMixture, dict[str, Any]]:
    """Fit the mixture to the last level of splitting runs (approximately N(0, I) near failure).

    The subspace is the span of each competing class's leading normalized margin gradients at
    its members (see `fit_components`): the failure-informed subspace of Uribe et al. (2021),
    taken per class so that a rare failure mode keeps its direction; at most `max_rank`
    directions, from at most `gradients` gradient evaluations. `points` (class, noise) are
    design points: they join the subspace and split their class's members (see
    `fit_components`).
    """
    members = _members(margins, winners, min_cluster)
    # A class needs at most `class_rank` directions: a few dozen gradients resolve them.
    per_class = max(2, min(50, gradients // max(1, len(members))))
    blocks, used = [], 0
    for own in members.values():
        picks = torch.linspace(0, own.numel() - 1, min(per_class, own.numel())).round().long()
        grads = oracle.gradients(samples[own[picks.to(own.device)]]).double()
        used += picks.numel()
        blocks.append(_directions(grads, energy, class_rank))
    if points:
        located = torch.stack([point for _, point in points]).double()
        blocks.append(located / located.norm(dim=1, keepdim=True).clamp(min=1e-30))
    stacked = torch.cat(blocks)
    if stacked.shape[0] == 0:
        # No usable gradient (flat or non-differentiable model): the mean failure direction.
        stacked = samples[margins <= 0].double().mean(dim=0, keepdim=True)
    _, singular, vh = torch.linalg.svd(stacked, full_matrices=False)
    keep = min(max_rank, oracle.dim, int((singular > 1e-6 * singular[0]).sum()))
    basis = vh[:keep].T.contiguous().to(samples.dtype)
    y = (samples @ basis).double()
    centres = [(cls, (point @ basis).double()) for cls, point in points or []]
    proposal = fit_components(
        y,
        margins,
        winners,
        basis,
        alpha=alpha,
        min_cluster=min_cluster,
        centres=centres,
        **options,
    )
    return proposal, {"gradients": used}


def _members(margins: Tensor, winners: Tensor, min_cluster: int) -> dict[int, Tensor]:
    """Indices fitted for each competing class: its failures, or its nearest samples."""
    failing = margins <= 0
    fail_counts = torch.bincount(winners[failing], minlength=int(winners.max()) + 1)
    members = {}
    for cls in competing_classes(margins, winners, min_cluster):
        own = (winners == cls).nonzero().flatten()
        if int(fail_counts[cls]) < min_cluster:
            own = own[torch.argsort(margins[own], stable=True)[:min_cluster]]
        else:
            own = own[failing[own]]
        members[cls] = own
    return members


def fit_components(
    y: Tensor,
    margins: Tensor,
    winners: Tensor,
    basis: Tensor,
    *,
    alpha: float,
    log_weights: Tensor | None = None,
    min_cluster: int = 10,
    min_share: float = 0.05,
    min_shares_total: float = 0.1,
    inflate: float = 1.2,
    min_variance: float = 0.6,
    dof: int | None = None,
    centres: list[tuple[int, Tensor]] | None = None,
) -> SubspaceMixture:
    """Components (Gaussian, or Student t with `dof`) per competing class on subspace
    coordinates y (n, r) of weighted samples.

    A class with several `centres` (class, subspace point), such as the local design points
    of a ReLU network or the previous round's components, splits its members by the nearest
    centre (one Lloyd step): one component per part with at least `min_cluster` members.

    Competing classes win at a failing sample or are runner-up at `min_cluster` or more
    samples. A class's members are its failing samples or, with fewer than `min_cluster`, its
    `min_cluster` samples of smallest margin. Its component has their (weighted) mean and
    covariance (inflated by `inflate`, eigenvalues floored at `min_variance`, because below 1/2
    the second moment of the weights diverges; the identity with too few members) and a
    mixture weight equal to its (weighted) share of the failures, floored at the smaller of
    `min_share` and `min_shares_total` / (number of components): floors of 0.05 each on a
    dozen components would take half the mixture and spend half the draws where a few
    percent of p lies (the batch-norm CNN's rarest input: 9 of 11 components floored, 93%
    of p in one class).
    `log_weights` are importance weights of the samples (None: equal, as for splitting).
    """
    failing = margins <= 0
    if log_weights is None:
        log_weights = torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
    weight = (log_weights - log_weights[failing].max()).exp().masked_fill(~failing, 0.0)
    members = _split(y, _members(margins, winners, min_cluster), centres or [], min_cluster)
    rank = basis.shape[1]
    eye = torch.eye(rank, dtype=torch.float64, device=y.device)
    means, chols = [], []
    for _, own in members:
        part = y[own]
        share = weight[own] if bool(weight[own].sum() > 0) else torch.ones_like(weight[own])
        share = share / share.sum()
        mean = share @ part
        means.append(mean)
        cov = eye
        # The covariance from square-rooted weights: a few large weights leave too few
        # effective members for it, and the flatter weighting errs on the wide side.
        tempered = share.sqrt() / share.sqrt().sum()
        effective = 1 / float((tempered**2).sum())
        if effective > rank + 1:
            centred = part - mean
            cov = (tempered[:, None] * centred).T @ centred / (1 - 1 / effective)
            values, vectors = torch.linalg.eigh(inflate * cov)
            cov = (vectors * values.clamp(min=min_variance)) @ vectors.T
        chols.append(torch.linalg.cholesky(cov))
    shares = torch.stack([weight[own].sum() for _, own in members]) / weight.sum()
    weights = shares.clamp(min=min(min_share, min_shares_total / len(members)))
    return SubspaceMixture(
        basis=basis,
        means=torch.stack(means),
        chols=torch.stack(chols),
        weights=weights / weights.sum(),
        alpha=alpha,
        classes=[cls for cls, _ in members],
        dof=dof,
    )


def _split(
    y: Tensor,
    members: dict[int, Tensor],
    centres: list[tuple[int, Tensor]],
    min_cluster: int,
) -> list[tuple[int, Tensor]]:
    """Each class's members, split by their nearest centre of that class into parts of at
    least `min_cluster` (a class with fewer than two centres stays whole)."""
    parts = []
    for cls, own in members.items():
        mine = [centre for c, centre in centres if c == cls]
        if len(mine) < 2:
            parts.append((cls, own))
            continue
        nearest = torch.cdist(y[own], torch.stack(mine).to(y)).argmin(dim=1)
        groups = [own[nearest == k] for k in range(len(mine))]
        kept = [g for g in groups if g.numel() >= min_cluster]
        if len(kept) < 2:
            parts.append((cls, own))
            continue
        # Members of a part too small to fit go to the largest part.
        largest = max(range(len(kept)), key=lambda k: kept[k].numel())
        rest = [g for g in groups if g.numel() < min_cluster]
        kept[largest] = torch.cat([kept[largest], *rest])
        parts.extend((cls, g) for g in kept)
    return parts
