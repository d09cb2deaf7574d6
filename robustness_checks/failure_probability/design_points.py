"""Design points: the most likely noise at which each competing class overtakes the label."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from robustness_checks.failure_probability.margin import MarginOracle


@dataclass
class DesignPoints:
    """Local design points: the smallest-norm failing noise found per class and lobe.

    `points` (k, dim) are standardized noise at which class `classes[i]` has a logit at least
    the label's (a class may appear more than once, one point per lobe); `betas` are their
    norms, so Phi(-beta) is the first-order (FORM) estimate of P(that lobe fails). Sorted by
    beta.
    """

    classes: list[int]
    points: Tensor
    betas: list[float]

    def form_probabilities(self) -> list[float]:
        from scipy import stats

        return [float(stats.norm.sf(beta)) for beta in self.betas]


def design_points(
    oracle: MarginOracle,
    *,
    generator: torch.Generator,
    classes: int,
    starts: int = 3,
    iterations: int = 50,
    step: float = 0.5,
    growth: float = 0.05,
    start_scale: float = 0.5,
    keep_within: float = 2.0,
    max_classes: int = 8,
    max_points: int = 12,
    local_within: float = 1.0,
    min_angle: float = 30.0,
    tolerance: float = 0.05,
) -> DesignPoints | None:
    """Minimum-norm noise at which each class overtakes the label, all in one batch.

    A decoupled-direction-and-norm search (Rony et al. 2019) on g_c(u) = z_label - z_c: each
    row takes a normalised gradient step of `step` times its radius (cosine-decayed) towards
    g_c <= 0 and is put back on the sphere of its radius, which shrinks by `growth` while the
    row fails and grows while it does not. Radii start at the linearised distance g / |grad|
    at u = 0, so rows begin near the boundary; one start is u = 0, `starts - 1` are random of
    scale `start_scale` (ReLU networks have several local design points). Unlike HL-RF, which
    stalls on strongly curved margins (batch norm, ReLU), it always ends on the failing side.
    An iterate within `tolerance` of the linearised boundary counts, moved onto it. Each row
    keeps its smallest-norm point; a class keeps its best and its other local design points
    (see `_local_points`). Points whose beta lies within `keep_within` of the smallest (a
    FORM share of about 1e-4 and up) are kept: at most `max_classes` classes and
    `max_points` points. None when no class was ever overtaken or the gradients are unusable
    (zero or not finite).
    """
    others = [c for c in range(classes) if c != oracle.label]
    rows = torch.tensor(others * starts, device=oracle.device)
    u = torch.zeros((rows.numel(), oracle.dim), device=oracle.device, dtype=oracle.dtype)
    if starts > 1:
        random = torch.randn(
            (rows.numel() - len(others), oracle.dim),
            generator=generator,
            device=oracle.device,
            dtype=oracle.dtype,
        )
        u[len(others) :] = start_scale * random
    best_norm = torch.full((rows.numel(),), math.inf, device=oracle.device)
    best = torch.zeros_like(u)
    radius = None
    for k in range(iterations):
        g, grad = oracle.pairwise(u, rows)
        usable = torch.isfinite(g) & torch.isfinite(grad).all(dim=1)
        length = (grad * grad).sum(dim=1).sqrt()
        usable &= length > 0
        distance = g / length.clamp(min=1e-30)
        landed = u - (distance / length.clamp(min=1e-30))[:, None] * grad
        norm = landed.norm(dim=1)
        better = usable & (distance <= tolerance) & (norm < best_norm)
        best_norm = torch.where(better, norm, best_norm)
        best = torch.where(better[:, None], landed, best)
        if radius is None:
            radius = torch.where(usable, norm, 1.0).clamp(0.5, 20.0)
        radius = torch.where(g <= 0, radius * (1 - growth), radius * (1 + growth))
        decay = 0.01 + 0.99 * (1 + math.cos(math.pi * k / iterations)) / 2
        direction = -grad / length.clamp(min=1e-30)[:, None]
        moved = u + (step * decay * radius)[:, None] * direction
        moved = moved * (radius / moved.norm(dim=1).clamp(min=1e-30))[:, None]
        u = torch.where(usable[:, None], moved, u)
    kept = _local_points(rows.tolist(), best_norm.tolist(), best, local_within, min_angle)
    if not kept:
        return None
    smallest = min(norm for _, norm, _ in kept)
    near = [item for item in kept if item[1] <= smallest + keep_within]
    classes = list(dict.fromkeys(cls for cls, _, _ in near))  # by their best beta
    near = [item for item in near if item[0] in classes[:max_classes]][:max_points]
    return DesignPoints(
        classes=[cls for cls, _, _ in near],
        points=torch.stack([point for _, _, point in near]),
        betas=[norm for _, norm, _ in near],
    )


def _local_points(
    rows: list[int], norms: list[float], points: Tensor, within: float, min_angle: float
) -> list[tuple[int, float, Tensor]]:
    """(class, beta, point) sorted by beta: each class's best point, and its other local
    design points within `within` of that beta and at least `min_angle` degrees from the
    points kept (ReLU networks have several failure lobes per class)."""
    kept: list[tuple[int, float, Tensor]] = []
    limit = math.cos(math.radians(min_angle))
    for row in sorted(range(len(rows)), key=lambda r: norms[r]):
        cls, norm, point = rows[row], norms[row], points[row]
        if not math.isfinite(norm):
            continue
        mine = [(n, p) for c, n, p in kept if c == cls]
        if mine and norm > mine[0][0] + within:
            continue
        cosines = [float(point @ p) / max(norm * n, 1e-30) for n, p in mine]
        if all(c < limit for c in cosines):
            kept.append((cls, norm, point))
    return kept
