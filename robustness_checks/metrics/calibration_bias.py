"""Finite-sample bias of calibration estimators: debiased and smooth ECE, consistency resampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from robustness_checks.metrics.calibration import bin_sums, equal_width_bins

if TYPE_CHECKING:
    from robustness_checks.metrics.calibration_intervals import BinnedInterval

MetricFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# relplot 1.0.3 constants: density offset of kernel.smooth, bandwidth floor and bisection steps
# of metrics.smECE, evaluation mesh of config.smECE_mesh_pts.
_DENSITY_EPS = 1e-4
_BANDWIDTH_FLOOR = 1e-3
_BISECTION_STEPS = 10
_MESH_POINTS = 200
_ELEMENTS_PER_BATCH = 4_000_000


def ece_debiased(confidences: np.ndarray, correct: np.ndarray, bins: int = 15) -> np.ndarray:
    """Debiased L2 calibration error of Kumar, Liang and Ma (NeurIPS 2019, Definition 5.2).

    Over the equal-width (lo, hi] bins of `expected_calibration_error`, with n_b examples, mean
    correctness a_b and mean confidence c_b in bin b of n examples::

        E^2 = sum_b (n_b / n) * [(a_b - c_b)^2 - a_b (1 - a_b) / (n_b - 1)]

    a_b (1 - a_b) / (n_b - 1) is the unbiased estimate of the variance a_b's binomial noise adds
    to (a_b - c_b)^2. The result is sqrt(max(E^2, 0)): the debiased estimate of the *L2* binned
    calibration error, sqrt(sum_b p_b gap_b^2), returned on ECE's scale but not equal to the L1
    ECE (by Jensen's inequality L2 >= L1; they agree when all gaps are equal). This is the
    authors' `calibration.unbiased_l2_ce`. A bin with n_b < 2 has no variance estimate and adds
    0 (as in the authors' code) while its examples still count in n. Leading axes are batches.
    """
    confidences = np.asarray(confidences, dtype=np.float64)
    ids = equal_width_bins(confidences, bins)
    counts, conf_sums, correct_sums = bin_sums(ids, bins, confidences, correct)
    safe = np.maximum(counts, 1)
    accuracy = correct_sums / safe
    gap_squared = (accuracy - conf_sums / safe) ** 2
    variance = accuracy * (1.0 - accuracy) / np.maximum(counts - 1, 1)
    terms = np.where(counts >= 2, gap_squared - variance, 0.0)
    squared = (counts * terms).sum(axis=-1) / confidences.shape[-1]
    return np.sqrt(np.maximum(squared, 0.0))


def smooth_ece(confidences: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Smooth ECE of Blasiok and Nakkiran (ICLR 2024) with their automatic bandwidth.

    smECE_sigma is the mean absolute value of the kernel-smoothed residual r(t) = E[f - y | f = t]
    weighted by the kernel density of f, with a Gaussian kernel of width sigma reflected at 0 and
    1. The bandwidth is the fixed point sigma* = smECE_sigma* (smECE_sigma decreases in sigma),
    found by bisection on [0, 1] as in `relplot.smECE`: 10 halvings, keeping the upper end
    (smECE_sigma <= sigma) and treating sigma < 1e-3 as below the fixed point; the result is
    smECE at that upper end. The discretisation is relplot 1.0.3's, so the two agree to rounding:
    examples are spread linearly onto a grid of max(2000, round(20/sigma)) // 2 + 1 points,
    convolved with the Gaussian sampled over offsets in [-1/2, 1/2] after one mirror reflection
    at each end, and interpolated onto a mesh of max(200, round(10/sigma)) points; the density
    carries relplot's offset of 1e-4. Leading axes are batches; the last axis indexes examples.
    """
    f = np.asarray(confidences, dtype=np.float64)
    y = np.broadcast_to(np.asarray(correct, dtype=np.float64), f.shape)
    shape, count = f.shape[:-1], f.shape[-1]
    f = f.reshape(-1, count)
    residual = f - y.reshape(-1, count)
    rows = f.shape[0]
    value = _smooth_ece_at(f, residual, np.ones(rows))
    active = ~(value > 1.0)
    start, end = np.ones(rows), np.zeros(rows)
    for _ in range(_BISECTION_STEPS):
        mid = (start + end) / 2
        evaluate = active & (mid >= _BANDWIDTH_FLOOR)
        current = np.full(rows, np.inf)
        current[evaluate] = _smooth_ece_at(f[evaluate], residual[evaluate], mid[evaluate])
        below = mid < current
        end = np.where(active & below, mid, end)
        keep_upper = active & ~below
        start = np.where(keep_upper, mid, start)
        value = np.where(keep_upper, current, value)
    return value.reshape(shape)


def consistency_null(
    confidences: np.ndarray,
    metric_fn: MetricFn,
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The metric's distribution under perfect calibration (Broecker and Smith 2007).

    Correctness is redrawn as Bernoulli(confidence) `resamples` times, as a (resamples, *shape)
    array processed in batches of a few million elements (the draws do not depend on the batch
    size), and `metric_fn(confidences, correct)` is evaluated on every redraw. Conditionally on
    the confidences this is the exact sampling law of the metric when the model is perfectly
    calibrated. Returns shape (resamples, *confidences.shape[:-1]).
    """
    if resamples < 1:
        raise ValueError("consistency_null needs at least one resample")
    confidences = np.asarray(confidences, dtype=np.float64)
    batch = max(1, min(resamples, _ELEMENTS_PER_BATCH // max(confidences.size, 1)))
    values = []
    for first in range(0, resamples, batch):
        drawn = rng.random((min(batch, resamples - first), *confidences.shape)) < confidences
        values.append(np.asarray(metric_fn(np.broadcast_to(confidences, drawn.shape), drawn)))
    return np.concatenate(values).astype(np.float64)


def calibration_interval(
    confidences: np.ndarray,
    correct: np.ndarray,
    metric: str = "ece",
    confidence_level: float = 0.95,
    rng: np.random.Generator | None = None,
    resamples: int = 1000,
    *,
    bins: int = 15,
) -> BinnedInterval:
    """Bounds on the TRUE (population) binned calibration error of `metric` ("ece":
    equal-width bins, "ace": equal-mass bins), not on the plug-in's mean: see
    `robustness_checks.metrics.calibration_intervals.binned_interval`. Raises ValueError with
    fewer than 2 examples; pass a seeded `rng` (None draws fresh entropy)."""
    from robustness_checks.metrics.calibration_intervals import binned_interval

    if metric not in ("ece", "ace"):
        raise ValueError(f"metric must be 'ece' or 'ace', got {metric!r}")
    return binned_interval(
        np.asarray(confidences, dtype=np.float64),
        np.asarray(correct, dtype=np.float64),
        bins=bins,
        equal_mass=metric == "ace",
        confidence_level=confidence_level,
        rng=np.random.default_rng() if rng is None else rng,
        resamples=resamples,
    )


def _smooth_ece_at(f: np.ndarray, residual: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """smECE at a bandwidth per row; f, residual (rows, n), sigma (rows,)."""
    grid = np.maximum(2000, np.round(20.0 / sigma)).astype(np.int64) // 2 + 1
    mesh = np.maximum(np.round(10.0 / sigma), _MESH_POINTS).astype(np.int64)
    out = np.empty(f.shape[0])
    for size in np.unique(grid):
        rows = np.flatnonzero(grid == size)
        step = max(1, _ELEMENTS_PER_BATCH // (8 * int(size) + 2 * int(mesh[rows].max())))
        for first in range(0, rows.size, step):
            chunk = rows[first : first + step]
            smoothed = _reflected_smooth(f[chunk], residual[chunk], sigma[chunk], int(size))
            out[chunk] = _mesh_average(smoothed, mesh[chunk])
    return out


def _reflected_smooth(
    f: np.ndarray, residual: np.ndarray, sigma: np.ndarray, size: int
) -> np.ndarray:
    """Kernel sums of (residual, 1) on a grid of `size` points: relplot's ReflectedGaussianKernel
    applied to its smooth_round_to_grid values; shape (rows, 2, size)."""
    from scipy import fft

    rows = f.shape[0]
    position = f * (size - 1)
    left = position.astype(np.int64).clip(0, size - 2)
    frac = position - left
    offsets = (np.arange(rows) * size)[:, None]
    values = np.empty((rows, 2, size))
    for channel, weight in enumerate((residual, np.ones_like(residual))):
        sums = np.bincount((left + offsets).ravel(), ((1 - frac) * weight).ravel(), rows * size)
        sums += np.bincount((left + 1 + offsets).ravel(), (frac * weight).ravel(), rows * size)
        values[:, channel] = sums.reshape(rows, size)
    flipped = values[..., ::-1]
    extended = np.concatenate([flipped[..., :-1], values, flipped[..., 1:]], axis=-1)
    t = np.linspace(0.0, 1.0, size)
    s = sigma[:, None]
    kernel = np.exp(-((t - 0.5) ** 2) / (2 * s**2)) / (np.sqrt(2 * np.pi) * s)
    length = fft.next_fast_len(4 * size - 3, real=True)
    full = fft.irfft(fft.rfft(extended, length) * fft.rfft(kernel, length)[:, None, :], length)
    first = size - 1 + size // 2
    return full[..., first : first + size]


def _mesh_average(smoothed: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """sum_t |S_r(t)| / sum_t (S_1(t) + eps) over each row's mesh of `mesh` points in [0, 1]."""
    at_mesh, valid = _at_mesh(smoothed, mesh)
    numerator = np.where(valid, np.abs(at_mesh[:, 0]), 0.0).sum(axis=-1)
    density = np.where(valid, at_mesh[:, 1] + _DENSITY_EPS, 0.0).sum(axis=-1)
    return numerator / density


def _at_mesh(smoothed: np.ndarray, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid values (rows, channels, size) interpolated linearly at each row's mesh of `mesh`
    points in [0, 1]: (rows, channels, max mesh) and which mesh points each row has."""
    size = smoothed.shape[-1]
    j = np.arange(int(mesh.max()))
    valid = j < mesh[:, None]
    t = np.minimum(j / (mesh[:, None] - 1), 1.0)
    bucket = 1 / (size - 1)
    index = (t * (size - 1)).astype(np.int64).clip(0, size - 2)
    weight = ((t - index * bucket) / bucket)[:, None, :]
    lower = np.take_along_axis(smoothed, index[:, None, :], axis=-1)
    upper = np.take_along_axis(smoothed, index[:, None, :] + 1, axis=-1)
    return lower * (1 - weight) + upper * weight, valid


def smooth_ece_weighted(
    positions: np.ndarray, residual: np.ndarray, mass: np.ndarray, sigma: float
) -> float:
    """smECE at bandwidth `sigma` of weighted examples (relplot's discretisation, without the
    density offset): examples at `positions` in [0, 1] carry residual (confidence - outcome)
    weights `residual` and density weights `mass`; for a population, sums over a fine grid."""
    size = max(2000, round(20.0 / sigma)) // 2 + 1
    mesh = np.array([max(round(10.0 / sigma), _MESH_POINTS)])
    sigma_row = np.array([sigma])
    parts = [
        _at_mesh(_reflected_smooth(positions[None], weights[None], sigma_row, size)[:, :1], mesh)
        for weights in (residual, mass)
    ]
    return float(np.abs(parts[0][0]).sum() / parts[1][0].sum())


def smooth_ece_operator(sigma: float, positions: np.ndarray, mesh_points: int) -> np.ndarray:
    """The linear map behind smECE_sigma, as a (len(positions), kept mesh points) matrix.

    Row g is what one example at confidence positions[g] adds to the kernel sums at the mesh
    points, with relplot's discretisation as `smooth_ece` uses it: linear spreading onto a grid
    of max(2000, round(20/sigma)) // 2 + 1 points, the Gaussian sampled over offsets in
    [-1/2, 1/2] with one mirror image at each end, linear interpolation at max(200,
    round(10/sigma)) mesh points. For examples at the positions with residual weights r and
    mass weights w, smECE_sigma = sum_t |r @ A| / sum_t (w @ A) (up to relplot's 1e-4 density
    offset). Every k-th mesh point is kept, k the smallest giving at most `mesh_points`.
    """
    size = max(2000, round(20.0 / sigma)) // 2 + 1
    mesh = max(round(10.0 / sigma), _MESH_POINTS)
    t = np.linspace(0.0, 1.0, size)
    kernel = np.exp(-((t - 0.5) ** 2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
    kept = np.minimum(np.arange(0, mesh, -(-mesh // mesh_points)) / (mesh - 1), 1.0)
    out_index, out_weight = _linear_pair(kept, size)
    in_index, in_weight = _linear_pair(np.asarray(positions, dtype=np.float64), size)
    operator = np.zeros((in_index.shape[0], kept.size))
    for a in range(2):
        source = in_index[:, a, None]
        for b in range(2):
            response = _reflected_response(kernel, out_index[None, :, b], source)
            operator += in_weight[:, a, None] * out_weight[None, :, b] * response
    return operator


def _linear_pair(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices (left, left + 1) and weights (1 - frac, frac) of points x in [0, 1] on a grid
    of `size` points, as relplot spreads examples and reads the mesh: (len(x), 2) each."""
    position = x * (size - 1)
    left = np.clip(position.astype(np.int64), 0, size - 2)
    frac = position - left
    return np.stack([left, left + 1], axis=1), np.stack([1 - frac, frac], axis=1)


def _reflected_response(kernel: np.ndarray, out: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The value `_reflected_smooth` puts at grid index `out` for a unit mass at grid index
    `source`: the kernel at the source and at its mirror images about both ends."""
    size = kernel.size
    total = np.zeros(np.broadcast_shapes(out.shape, source.shape))
    images = ((source, True), (-source, source > 0), (2 * (size - 1) - source, source < size - 1))
    for virtual, present in images:
        offset = size // 2 + out - virtual
        valid = present & (offset >= 0) & (offset < size)
        total += np.where(valid, kernel[np.clip(offset, 0, size - 1)], 0.0)
    return total
