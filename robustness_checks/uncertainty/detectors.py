"""Feature-based OOD detectors, fitted on in-distribution features; higher score = more OOD.

Features are (n, d) tensors (see `features.py`); statistics are float64. `weight` and `bias` are
those of the last linear layer, for the detectors that map features back to logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FIT_SCORES = ("mahalanobis", "relative_mahalanobis", "knn", "vim", "react")
HEAD_SCORES = ("vim", "react", "ash")
FEATURE_SCORES = (*FIT_SCORES, "ash")
MAX_CHUNK_ELEMENTS = 2**24


@dataclass(frozen=True)
class Gaussians:
    """Class-conditional Gaussians with one shared covariance (maximum likelihood)."""

    classes: Tensor  # (C,) the labels present in the fit data
    means: Tensor  # (C, r) whitened class means
    whiten: Tensor  # (d, r): x^T pinv(Sigma) x = ||x @ whiten||^2


@dataclass(frozen=True)
class Background:
    """One Gaussian of all fit features together (relative Mahalanobis's reference)."""

    mean: Tensor  # (r0,) whitened mean
    whiten: Tensor  # (d, r0)


@dataclass(frozen=True)
class VirtualLogit:
    """ViM's origin, residual subspace and the scale that matches it to the logits."""

    origin: Tensor  # (d,)
    residual: Tensor  # (d, d - dim)
    alpha: float


def whitening(centered: Tensor) -> Tensor:
    """(d, r) map W with ||x W||^2 = x^T pinv(cov) x, cov = centered^T centered / n (float64)."""
    cov = centered.T @ centered / centered.shape[0]
    values, vectors = torch.linalg.eigh(cov)
    # numpy.linalg.pinv's cut-off: eigenvalues below d * eps * the largest count as zero.
    keep = values > values.max().clamp_min(0) * values.shape[0] * torch.finfo(values.dtype).eps
    return vectors[:, keep] / values[keep].sqrt()


def fit_gaussians(features: Tensor, labels: Tensor) -> Gaussians:
    """Class means and the shared (pooled within-class) covariance."""
    z = features.double()
    classes, inverse = labels.unique(return_inverse=True)
    counts = torch.bincount(inverse, minlength=len(classes)).to(z.dtype)
    sums = torch.zeros(len(classes), z.shape[1], dtype=z.dtype, device=z.device)
    means = sums.index_add_(0, inverse, z) / counts[:, None]
    whiten = whitening(z - means[inverse])
    return Gaussians(classes, means @ whiten, whiten)


def fit_background(features: Tensor) -> Background:
    """The mean and covariance of all fit features, as one Gaussian."""
    z = features.double()
    mean = z.mean(dim=0)
    whiten = whitening(z - mean)
    return Background(mean @ whiten, whiten)


def _squared_distances(points: Tensor, centres: Tensor) -> Tensor:
    """(n, C) squared Euclidean distances, float64, without an (n, C, d) intermediate."""
    cross = points @ centres.T
    return (points.square().sum(1)[:, None] - 2 * cross + centres.square().sum(1)).clamp_min(0)


def mahalanobis_score(model: Gaussians, features: Tensor) -> Tensor:
    """min over classes of the squared Mahalanobis distance to the class mean."""
    z = features.double() @ model.whiten
    return _squared_distances(z, model.means).amin(dim=1)


def relative_mahalanobis_score(
    model: Gaussians, background: Background, features: Tensor
) -> Tensor:
    """Ren et al. 2021: min_c MD_c(x) - MD_0(x), MD_0 against the one Gaussian of all classes."""
    z = features.double()
    reference = (z @ background.whiten - background.mean).square().sum(dim=1)
    return mahalanobis_score(model, z) - reference


def normalised(features: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (in float64, returned as float32; zero rows stay zero)."""
    z = features.double()
    return (z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)).float()


def knn_score(bank: Tensor, features: Tensor, k: int) -> Tensor:
    """Sun et al. 2022: distance to the k-th nearest row of `bank` (unit rows), on unit features.

    Cosine similarities in float32 (the cost: one (n, N) matrix product), distances
    sqrt(2 - 2 s) in float64.
    """
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"knn needs 1 <= k <= {bank.shape[0]} fit examples, got k = {k}")
    query = normalised(features).to(bank.dtype)
    chunk = max(1, MAX_CHUNK_ELEMENTS // max(1, bank.shape[0]))
    parts = []
    for rows in query.split(chunk):
        kth = (rows @ bank.T).topk(k, dim=1, sorted=False).values.amin(dim=1).double()
        parts.append((2.0 - 2.0 * kth).clamp_min(0).sqrt())
    return torch.cat(parts) if parts else query.new_zeros(0, dtype=torch.float64)


def vim_dimension(features: int) -> int:
    """ViM's principal dimension as in Wang et al. 2022: 1000 from 1500 features, 512 from 768,
    else half the features."""
    if features >= 1500:
        return 1000
    if features >= 768:
        return 512
    return max(1, features // 2)


def fit_vim(features: Tensor, weight: Tensor, bias: Tensor, dim: int | None) -> VirtualLogit:
    """Wang et al. 2022: origin -pinv(W) b, residual = the d - dim smallest principal directions."""
    z = features.double()
    size = z.shape[1]
    dim = vim_dimension(size) if dim is None else dim
    if not 0 < dim < size:
        raise ValueError(f"vim needs 0 < vim_dim < {size} (the feature size), got {dim}")
    origin = -(torch.linalg.pinv(weight) @ bias)
    centred = z - origin
    _, vectors = torch.linalg.eigh(centred.T @ centred / z.shape[0])
    residual = vectors[:, : size - dim]
    logits = z @ weight.T + bias
    norms = (centred @ residual).norm(dim=1)
    alpha = float(logits.amax(dim=1).mean() / norms.mean().clamp_min(1e-12))
    return VirtualLogit(origin, residual, alpha)


def vim_score(model: VirtualLogit, features: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """alpha ||residual of x|| - logsumexp(logits): the virtual logit against the energy."""
    z = features.double()
    virtual = ((z - model.origin) @ model.residual).norm(dim=1) * model.alpha
    return virtual - torch.logsumexp(z @ weight.T + bias, dim=1)


def react_threshold(features: Tensor, percentile: float) -> float:
    """The `percentile` (0-100) of every feature value of the fit data (numpy's linear rule)."""
    return float(np.percentile(features.detach().cpu().double().numpy().ravel(), percentile))


def energy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """-T logsumexp(logits / T), float64."""
    return -temperature * torch.logsumexp(logits.double() / temperature, dim=1)


def react_score(
    features: Tensor, weight: Tensor, bias: Tensor, threshold: float, temperature: float = 1.0
) -> Tensor:
    """Sun et al. 2021: energy of the logits of features clipped from above at `threshold`."""
    clipped = features.double().clamp(max=threshold)
    return energy(clipped @ weight.T + bias, temperature)


def ash_s(features: Tensor, percentile: float) -> Tensor:
    """ASH-S (Djurisic et al. 2023): keep each row's top (100 - percentile)% values, zero the rest,
    and scale by exp(sum before / sum after)."""
    z = features.double()
    size = z.shape[1]
    keep = size - int(np.round(size * percentile / 100.0))
    if keep < 1:
        raise ValueError(f"ash percentile {percentile} keeps no feature of {size}")
    values, index = z.topk(keep, dim=1)
    pruned = torch.zeros_like(z).scatter_(1, index, values)
    before, after = z.sum(dim=1), values.sum(dim=1)
    ratio = torch.where(after != 0, before / torch.where(after != 0, after, 1.0), 0.0)
    return pruned * ratio.exp()[:, None]


def ash_score(
    features: Tensor, weight: Tensor, bias: Tensor, percentile: float, temperature: float = 1.0
) -> Tensor:
    """Energy of the logits of ASH-S-shaped features (no fitting)."""
    return energy(ash_s(features, percentile) @ weight.T + bias, temperature)


def max_logit_score(logits: Tensor) -> Tensor:
    """Hendrycks et al. 2022: -max logit, float64."""
    return -logits.double().amax(dim=1)
