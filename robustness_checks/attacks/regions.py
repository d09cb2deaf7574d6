"""Norm balls intersected with the input bounds: random draws, steepest-ascent steps, projection."""

from __future__ import annotations

import math
from typing import Literal, Protocol

import torch
from torch import Tensor

from robustness_checks.execution.random_streams import ExampleStream

NormName = Literal["inf", "2"]
Bounds = tuple[float, float] | None
RandomSource = torch.Generator | ExampleStream | None


def parse_norm(norm: object) -> NormName:
    """Normalise 'inf', 'linf', math.inf, 2, 2.0, '2' or 'l2' to 'inf' or '2'."""
    if isinstance(norm, str):
        key = norm.strip().lower()
        key = key[1:] if key.startswith("l") else key
        if key in ("inf", "infinity"):
            return "inf"
        if key in ("2", "2.0"):
            return "2"
    elif isinstance(norm, int | float) and not isinstance(norm, bool):
        if norm == math.inf:
            return "inf"
        if norm == 2:
            return "2"
    raise ValueError(f"unsupported norm {norm!r}: use 'inf' or 2")


def _per_row(values: Tensor, ndim: int) -> Tensor:
    """A (rows,) tensor viewed as (rows, 1, ..., 1) to broadcast over inputs of `ndim` dims."""
    return values.view(-1, *([1] * (ndim - 1)))


def _row_norms(t: Tensor) -> Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def unit_noise(
    kind: Literal["uniform", "gaussian"],
    norm: NormName,
    shape: tuple[int, ...],
    *,
    generator: RandomSource,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """Random perturbations of the unit ball of `norm`, one per row of `shape`.

    uniform: uniform in the ball. gaussian: for 'inf', N(0, 1) per coordinate clipped to [-1, 1]
    (sigma = eps before clipping); for '2', N(0, 1/d) so that the expected squared norm is 1,
    then scaled back onto the unit ball where its norm exceeds 1.
    """
    draw = _Draws(generator, device, dtype)
    dims = math.prod(shape[1:])
    if kind == "uniform" and norm == "inf":
        return draw.uniform(shape).mul_(2).sub_(1)
    if kind == "uniform":
        direction = draw.normal(shape)
        radius = draw.uniform(shape[:1]).pow_(1.0 / dims)
        scale = radius / _row_norms(direction).clamp_min(torch.finfo(dtype).tiny)
        return direction.mul_(_per_row(scale, len(shape)))
    noise = draw.normal(shape)
    if norm == "inf":
        return noise.clamp_(-1.0, 1.0)
    noise.div_(math.sqrt(dims))
    scale = _row_norms(noise).clamp_min(1.0).reciprocal_()
    return noise.mul_(_per_row(scale, len(shape)))


class _Draws:
    """Uniform and normal draws from a torch.Generator (or the global one) or an ExampleStream."""

    def __init__(self, source: RandomSource, device: torch.device, dtype: torch.dtype) -> None:
        self.source, self.device, self.dtype = source, device, dtype

    def uniform(self, shape: tuple[int, ...]) -> Tensor:
        if isinstance(self.source, ExampleStream):
            return self.source.uniform(shape, self.dtype)
        return torch.rand(shape, generator=self.source, device=self.device, dtype=self.dtype)

    def normal(self, shape: tuple[int, ...]) -> Tensor:
        if isinstance(self.source, ExampleStream):
            return self.source.normal(shape, self.dtype)
        return torch.randn(shape, generator=self.source, device=self.device, dtype=self.dtype)


def unit_direction(grad: Tensor, norm: NormName) -> Tensor:
    """The steepest-ascent direction of unit `norm`: sign(grad), or grad / ||grad||_2 per row."""
    if norm == "inf":
        return grad.sign()
    scale = _row_norms(grad).clamp_min(torch.finfo(grad.dtype).tiny).reciprocal_()
    return grad * _per_row(scale, grad.ndim)


class Region(Protocol):
    """The feasible set of each row: the eps-ball around its clean input, within the bounds."""

    def project(self, x: Tensor) -> Tensor:
        """`x` moved into the region, in place."""
        ...

    def start(self, unit: Tensor) -> Tensor:
        """A new tensor: the clean inputs plus eps times `unit`, projected."""
        ...

    def step(self, x: Tensor, grad: Tensor, step: Tensor) -> Tensor:
        """`x` moved in place by `step` along the steepest-ascent direction of `grad`, projected.

        `grad` is only read: autograd may return an expanded tensor (a model whose first
        operation broadcasts its input) or one the model still holds, so writing into it fails
        or corrupts the model."""
        ...

    def select(self, index: Tensor) -> Region:
        """The region of the rows in `index` only."""
        ...


class LinfRegion:
    """An L-inf ball within box bounds is a box: projection is a single clamp to [lo, hi]."""

    def __init__(self, x0: Tensor, eps: Tensor, bounds: Bounds, *, _box: tuple | None = None):
        self.x0 = x0
        self.eps = eps
        self.bounds = bounds
        if _box is not None:
            self.lo, self.hi = _box
            return
        radius = _per_row(eps, x0.ndim)
        self.lo, self.hi = x0 - radius, x0 + radius
        if bounds is not None:
            self.lo.clamp_(min=bounds[0])
            self.hi.clamp_(max=bounds[1])

    def project(self, x: Tensor) -> Tensor:
        return torch.clamp(x, self.lo, self.hi, out=x)

    def start(self, unit: Tensor) -> Tensor:
        return self.project(torch.addcmul(self.x0, unit, _per_row(self.eps, unit.ndim)))

    def step(self, x: Tensor, grad: Tensor, step: Tensor) -> Tensor:
        return self.project(x.addcmul_(grad.sign(), _per_row(step, x.ndim)))

    def select(self, index: Tensor) -> LinfRegion:
        box = (self.lo.index_select(0, index), self.hi.index_select(0, index))
        return LinfRegion(
            self.x0.index_select(0, index), self.eps.index_select(0, index), self.bounds, _box=box
        )


class L2Region:
    """An L2 ball, then the bounds: clipping toward a clean input inside the bounds only shrinks
    the perturbation, so the result stays in the ball."""

    def __init__(self, x0: Tensor, eps: Tensor, bounds: Bounds):
        self.x0 = x0
        self.eps = eps
        self.bounds = bounds
        self._tiny = torch.finfo(x0.dtype).tiny

    def project(self, x: Tensor) -> Tensor:
        delta = x.sub_(self.x0)
        factor = (self.eps / _row_norms(delta).clamp_min(self._tiny)).clamp_max_(1.0)
        delta.mul_(_per_row(factor, x.ndim)).add_(self.x0)
        if self.bounds is not None:
            delta.clamp_(self.bounds[0], self.bounds[1])
        return delta

    def start(self, unit: Tensor) -> Tensor:
        return self.project(torch.addcmul(self.x0, unit, _per_row(self.eps, unit.ndim)))

    def step(self, x: Tensor, grad: Tensor, step: Tensor) -> Tensor:
        scale = step / _row_norms(grad).clamp_min(self._tiny)
        return self.project(x.addcmul_(grad, _per_row(scale, x.ndim)))

    def select(self, index: Tensor) -> L2Region:
        return L2Region(
            self.x0.index_select(0, index), self.eps.index_select(0, index), self.bounds
        )


def make_region(norm: NormName, x0: Tensor, eps: Tensor, bounds: Bounds) -> Region:
    """The region of each row of `x0` with its own radius `eps` (rows,)."""
    return LinfRegion(x0, eps, bounds) if norm == "inf" else L2Region(x0, eps, bounds)
