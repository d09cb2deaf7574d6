"""Checks of attack arguments shared by run_attack and run_auto: inputs, bounds, eps, counts."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from torch import Tensor

from robustness_checks.attacks.regions import Bounds, RandomSource
from robustness_checks.execution.random_streams import ExampleStream
from robustness_checks.spec.numbers import read_number


def check_inputs(
    x: Tensor,
    y: Tensor,
    bounds: Bounds | Sequence[float],
    generator: RandomSource,
    max_batch: int | None,
) -> Bounds:
    """Raise ValueError for a malformed batch, generator or max_batch; the bounds as floats."""
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(
            f"x must be a float batch of shape (n, ...), got {x.dtype} {tuple(x.shape)}"
        )
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if max_batch is not None:
        check_int("max_batch", max_batch, 1)
    if generator is not None and generator.device != x.device:
        raise ValueError(f"generator is on {generator.device}, x is on {x.device}")
    if isinstance(generator, ExampleStream) and len(generator.indices) != x.shape[0]:
        raise ValueError(
            f"the ExampleStream has {len(generator.indices)} indices for {x.shape[0]} examples"
        )
    return check_bounds(bounds)


def as_eps_list(eps: float | str | Sequence[float | str] | Tensor) -> list[float]:
    """eps as a non-empty list of finite, non-negative floats; text such as '8/255' is read as
    a spec file's eps is (no eval) and printed as written."""
    if isinstance(eps, Tensor):
        eps = eps.flatten().tolist()
    values = [eps] if isinstance(eps, numbers.Real | str) else list(eps)
    if not values:
        raise ValueError("eps must not be empty")
    out = [read_number(v, "eps") for v in values]
    if any(not math.isfinite(v) or v < 0 for v in out):
        raise ValueError(f"eps must be finite and >= 0, got {values}")
    return out


def check_bounds(bounds: Bounds | Sequence[float]) -> Bounds:
    """(lo, hi) as floats with lo < hi, or None for unbounded inputs."""
    if bounds is None:
        return None
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must satisfy low < high, got {bounds}")
    return lo, hi


def check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
