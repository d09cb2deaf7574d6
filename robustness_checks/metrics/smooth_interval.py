"""An interval on the population smooth ECE, from bounds at a fixed bandwidth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from robustness_checks.metrics.calibration_bias import smooth_ece_operator
from robustness_checks.metrics.calibration_bounds import (
    GLOBAL_SHARE,
    Interval,
    abs_sum_lower,
    bootstrap_upper,
    cell_matrix,
    gap_lower,
    redraw,
    replicate,
    times,
)

# --- smooth ECE ---------------------------------------------------------------------------------


SMOOTH_NODES = 257  # confidences are spread linearly onto this many nodes in [0, 1]
SMOOTH_MESH = 128  # at most this many of relplot's mesh points are kept


def smooth_interval(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    value: float,
    confidence_level: float,
    rng: np.random.Generator,
    resamples: int,
) -> Interval:
    """Bounds on the population smooth ECE, the fixed point sigma* = smECE_sigma*(D).

    smECE_sigma(D) decreases in sigma, so sigma* <= s exactly when smECE_s(D) <= s. With U(s)
    and L(s) bounds on smECE_s(D) at a fixed bandwidth s, the interval is [the largest s with
    L(s) >= s, the smallest s with U(s) <= s]. At a fixed bandwidth smECE_s is a ratio of a sum
    over mesh points of |kernel-smoothed residual| and a sum of the smoothed density, linear in
    the examples before the absolute value (`smooth_ece_operator`, relplot's discretisation,
    with confidences spread onto SMOOTH_NODES nodes and SMOOTH_MESH mesh points kept). U is the
    bootstrap bound on the plug-in's mean; L the larger of the density-weighted global gap
    sum_t (smoothed residual) / sum_t (smoothed density), a weighted mean, and moment selection
    over the mesh points. `value` (the sample's smooth ECE) starts the search.
    """
    count = confidence.shape[-1]
    error = (1.0 - confidence_level) / 2
    left, weights = _spread(confidence, SMOOTH_NODES)
    active, cells = np.unique(left, return_inverse=True)  # the nodes that hold examples
    spread = cell_matrix(cells.reshape(left.shape), active.size, weights)
    positions = active / (SMOOTH_NODES - 1)
    residual = confidence - correct
    with_residual = spread * residual[:, None]
    # float32 for the large products; the sums are of at most a few thousand terms.
    boot = replicate(
        rng,
        count,
        resamples,
        lambda counts: np.concatenate([times(counts, with_residual), times(counts, spread)], 1),
    ).astype(np.float32)
    boot_residual, boot_mass = boot[:, : active.size], boot[:, active.size :]
    null_residual = redraw(rng, confidence, resamples, lambda dev: -times(dev, spread))
    null_residual = null_residual.astype(np.float32)
    point_residual = with_residual.sum(axis=0)
    point_mass = spread.sum(axis=0)
    floor = float(np.mean(confidence * (1 - confidence)))
    found: dict[float, dict[str, Any]] = {}

    def at(sigma: float) -> dict[str, Any]:
        """The operator, mesh values and bootstrap replicates at bandwidth sigma."""
        if sigma not in found:
            operator = smooth_ece_operator(sigma, positions, SMOOTH_MESH)
            mass = operator.sum(axis=1)
            density = float(point_mass @ mass)
            single = operator.astype(np.float32)
            found[sigma] = {
                "single": single,
                "mass": mass,
                "density": density,
                "mesh": point_residual @ operator / density,
                "boot": (boot_residual @ single) / (boot_mass @ mass)[:, None],
            }
        return found[sigma]

    def upper(sigma: float) -> float:
        here = at(sigma)
        plugin = float(np.abs(here["mesh"]).sum())
        return bootstrap_upper(plugin, np.abs(here["boot"]).sum(axis=1), error)

    def lower(sigma: float) -> float:
        here = at(sigma)
        weight = spread @ here["mass"] * (count / here["density"])
        mesh = here["mesh"]
        null = null_residual @ here["single"] / here["density"]
        return max(
            gap_lower(residual * weight, floor * float(np.mean(weight**2)), GLOBAL_SHARE * error),
            abs_sum_lower(mesh, here["boot"] - mesh, null, (1 - GLOBAL_SHARE) * error),
        )

    return _fixed_point(lower, value, -1), _fixed_point(upper, value, 1)


def _spread(x: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear spreading of x in [0, 1] onto `nodes` equally spaced nodes: indices and weights,
    (n, 2) each."""
    position = x * (nodes - 1)
    left = np.clip(position.astype(np.int64), 0, nodes - 2)
    frac = position - left
    return np.stack([left, left + 1], axis=1), np.stack([1 - frac, frac], axis=1)


def _fixed_point(bound: Callable[[float], float], start: float, side: int) -> float:
    """The s in [0, 1] with bound(s) = s, for a bound that decreases in s, rounded outwards:
    side -1 (a lower end) returns a point at or below it, side +1 (an upper end) one at or
    above it. f(s) = bound(s) - s falls with slope <= -1, so the root is within |f(s)| of s:
    the search (first s <- bound(s), then regula falsi with the Illinois rule once the root is
    bracketed) stops when |f(s)| <= 3e-4 and returns s + side |f(s)|, clipped to [0, 1]. Below
    relplot's smallest bandwidth 1e-3 nothing is evaluated: a root there is reported as 0
    (lower end) or 1e-3 (upper end)."""
    floor, tolerance = 1e-3, 3e-4
    bracket: dict[bool, tuple[float, float]] = {}  # sign of f -> (s, f(s)) nearest the root
    s = min(max(start, floor), 1.0)
    for _ in range(12):
        f = min(bound(s), 1.0) - s
        if abs(f) <= tolerance:
            return float(np.clip(s + side * abs(f), 0.0, 1.0))
        if f < 0 and s <= floor:
            return 0.0 if side < 0 else floor
        bracket[f > 0] = (s, f)
        if len(bracket) < 2:
            s = min(max(s + f, floor), 1.0)
            continue
        (a, fa), (b, fb) = bracket[True], bracket[False]
        s = a - fa * (b - a) / (fb - fa)
        # Illinois: halve the value kept from the side that did not move, to avoid stalling.
        stale = not (f > 0)
        bracket[stale] = (bracket[stale][0], bracket[stale][1] / 2)
    ends = [point for point, _ in bracket.values()]
    return float(min(ends) if side < 0 else max(ends))
