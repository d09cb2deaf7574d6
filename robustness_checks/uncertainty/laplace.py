"""Last-layer Laplace: KFAC or diagonal GGN posterior, marginal-likelihood prior, samples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

Hessian = Literal["kron", "diag"]
# Log-spaced grid of prior precisions searched for the largest Laplace marginal likelihood.
PRIOR_GRID: tuple[float, ...] = tuple(10.0 ** (k / 10) for k in range(-40, 41))


@dataclass(frozen=True)
class LastLayerLaplace:
    """Gaussian posterior N(theta_MAP, P^-1) over the last linear layer's (W, b), float64.

    kron: P = blockdiag(B (x) A + delta I, B + delta I) with B = sum_n diag(p_n) - p_n p_n^T
    and A = mean_n phi_n phi_n^T, kept as eigendecompositions (lam_b, q_b) of B and (lam_a, q_a)
    of A. diag: P = diag(h_w + delta, h_b + delta), the exact diagonal of the GGN.
    """

    weight: Tensor  # (K, D)
    bias: Tensor  # (K,)
    hessian: Hessian
    prior_precision: float
    curvature: tuple[Tensor, ...]
    log_marginal_likelihood: float
    grid: tuple[tuple[float, float], ...] = ()  # (prior precision, log marginal likelihood)
    has_bias: bool = True  # False: the layer has no bias, which stays at 0

    def _kron_scales(self) -> tuple[Tensor, Tensor]:
        lam_b, _, lam_a, _ = self.curvature
        weight = (lam_b[:, None] * lam_a[None, :] + self.prior_precision).rsqrt()
        return weight, (lam_b + self.prior_precision).rsqrt() * self.has_bias

    def _diag_scales(self) -> tuple[Tensor, Tensor]:
        h_w, h_b = self.curvature
        s_b = (h_b + self.prior_precision).rsqrt() * self.has_bias
        return (h_w + self.prior_precision).rsqrt(), s_b

    def logits_mean_and_covariance(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (n, K) and covariance (n, K, K) of the linearised logits W phi + b, float64."""
        phi = features.to(self.weight)
        mean = phi @ self.weight.T + self.bias
        if self.hessian == "diag":
            s_w, s_b = self._diag_scales()
            variance = (phi**2) @ (s_w**2).T + s_b**2
            return mean, torch.diag_embed(variance)
        s_w, s_b = self._kron_scales()
        _, q_b, _, q_a = self.curvature
        u = phi @ q_a  # (n, D): features in A's eigenbasis
        variance = (u**2) @ (s_w**2).T + s_b**2  # (n, K) in B's eigenbasis
        return mean, q_b @ torch.diag_embed(variance) @ q_b.T

    def probit(self, features: Tensor) -> Tensor:
        """Probit-approximated predictive softmax(mu / sqrt(1 + pi/8 var)) (n, K), float64."""
        mean, covariance = self.logits_mean_and_covariance(features)
        variance = torch.diagonal(covariance, dim1=-2, dim2=-1)
        return (mean / (1.0 + math.pi / 8.0 * variance).sqrt()).softmax(dim=-1)

    def sample_weights(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One draw (W, b) from the posterior."""
        options = {"dtype": self.weight.dtype, "device": self.weight.device}
        noise_w = torch.randn(self.weight.shape, generator=generator, **options)
        noise_b = torch.randn(self.bias.shape, generator=generator, **options)
        if self.hessian == "diag":
            s_w, s_b = self._diag_scales()
            return self.weight + s_w * noise_w, self.bias + s_b * noise_b
        s_w, s_b = self._kron_scales()
        _, q_b, _, q_a = self.curvature
        # (Q_B (x) Q_A) vec(E) = vec(Q_B E Q_A^T) for row-major vec(W).
        return self.weight + q_b @ (s_w * noise_w) @ q_a.T, self.bias + q_b @ (s_b * noise_b)

    def sample_probabilities(
        self, features: Tensor, samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """softmax(W_t phi + b_t) for T = `samples` posterior draws: (T, n, K), float32."""
        phi = features.to(self.weight)
        out = []
        for _ in range(samples):
            weight, bias = self.sample_weights(generator)
            out.append((phi @ weight.T + bias).softmax(dim=-1).float())
        return torch.stack(out)


def _kron_curvature(phi: Tensor, probs: Tensor) -> tuple[Tensor, ...]:
    b = torch.diag_embed(probs).sum(0) - probs.T @ probs
    a = phi.T @ phi / phi.shape[0]
    lam_b, q_b = torch.linalg.eigh(b)
    lam_a, q_a = torch.linalg.eigh(a)
    return lam_b.clamp_min(0.0), q_b, lam_a.clamp_min(0.0), q_a


def _diag_curvature(phi: Tensor, probs: Tensor) -> tuple[Tensor, ...]:
    g = probs - probs**2  # diagonal of diag(p) - p p^T, (n, K)
    return g.T @ phi**2, g.sum(0)


def _log_det_posterior(
    hessian: Hessian, curvature: tuple[Tensor, ...], delta: float, has_bias: bool
) -> Tensor:
    if hessian == "diag":
        h_w, h_b = curvature
        return (h_w + delta).log().sum() + (h_b + delta).log().sum() * has_bias
    lam_b, _, lam_a, _ = curvature
    weight = (lam_b[:, None] * lam_a[None, :] + delta).log().sum()
    return weight + (lam_b + delta).log().sum() * has_bias


def log_marginal_likelihood(
    hessian: Hessian,
    curvature: tuple[Tensor, ...],
    theta_norm2: float,
    parameters: int,
    log_likelihood: float,
    delta: float,
    has_bias: bool = True,
) -> float:
    """log p(D | delta) ~ log p(D | theta) - 1/2 (log det P - P log delta + delta |theta|^2)."""
    log_det = _log_det_posterior(hessian, curvature, delta, has_bias)
    log_det_ratio = log_det - parameters * math.log(delta)
    return float(log_likelihood - 0.5 * (log_det_ratio + delta * theta_norm2))


def fit_laplace(
    features: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    labels: Tensor | None = None,
    *,
    hessian: Hessian = "kron",
    prior_precision: float | None = None,
    grid: tuple[float, ...] = PRIOR_GRID,
) -> LastLayerLaplace:
    """The last-layer Laplace posterior at the trained (MAP) `weight`, `bias` on fit `features`.

    The GGN of the summed softmax cross-entropy needs no labels; `labels` only add the (prior
    independent) log-likelihood to the reported marginal likelihood. With `prior_precision`
    None, the prior precision is the grid value with the largest marginal likelihood.
    """
    if hessian not in ("kron", "diag"):
        raise ValueError(f"hessian must be 'kron' or 'diag', got {hessian!r}")
    weight = weight.detach().double()
    has_bias = bias is not None
    bias = torch.zeros_like(weight[:, 0]) if bias is None else bias.detach().double()
    phi = features.detach().to(weight)
    logits = phi @ weight.T + bias
    probs = logits.softmax(dim=-1)
    make = _kron_curvature if hessian == "kron" else _diag_curvature
    curvature = make(phi, probs)
    theta_norm2 = float((weight**2).sum() + (bias**2).sum())
    log_likelihood = 0.0
    if labels is not None:
        labels = labels.to(weight.device).long()
        log_likelihood = -float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
    size = weight.numel() + bias.numel() * has_bias
    candidates = grid if prior_precision is None else (prior_precision,)
    table = tuple(
        (
            delta,
            log_marginal_likelihood(
                hessian, curvature, theta_norm2, size, log_likelihood, delta, has_bias
            ),
        )
        for delta in candidates
    )
    best, value = max(table, key=lambda item: item[1])
    return LastLayerLaplace(weight, bias, hessian, best, curvature, value, table, has_bias)


__all__ = ["PRIOR_GRID", "Hessian", "LastLayerLaplace", "fit_laplace", "log_marginal_likelihood"]
