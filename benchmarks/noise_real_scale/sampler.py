"""Exact Monte Carlo of Gaussian input noise for a patchify-stem model, drawn after the stem.

Noise sigma * z on a 4x4x3 patch reaches the stem as sigma * W z, a Gaussian with covariance
sigma^2 W W^T (C x C for C stem channels), independent across the non-overlapping patches. So
`count_failures` draws C normals per patch (L u with L L^T = W W^T) instead of 48 and skips the
stem: the same distribution of the model's output, at a third to a sixth of the cost.
"""

from __future__ import annotations

import torch

from benchmarks.noise_real_scale.models import PatchModel

CHUNK = 32768


def stem_noise_factor(model: PatchModel) -> torch.Tensor:
    """L (C x C, lower triangular) with L L^T = W W^T for the stem's weights W (C x 3k^2)."""
    weights = model.stem.weight.detach().flatten(1).double()
    return torch.linalg.cholesky(weights @ weights.T).float()


def stem_noise(
    model: PatchModel, draws: int, sigma: float, generator: torch.Generator
) -> torch.Tensor:
    """`draws` samples of the stem's response to sigma * N(0, I) input noise, (draws, C, H, W)."""
    factor = stem_noise_factor(model)
    side = 32 // model.stem.stride[0]
    normals = torch.randn((draws, side, side, factor.shape[0]), generator=generator)
    return (sigma * normals @ factor.T).permute(0, 3, 1, 2)


def count_failures(
    model: PatchModel, x: torch.Tensor, label: int, sigma: float, draws: int, seed: int
) -> tuple[int, int]:
    """Failures (margin <= 0) among `draws` rounded up to whole chunks, and the draws made."""
    generator = torch.Generator().manual_seed(seed)
    chunk = min(CHUNK, draws)
    chunks = -(-draws // chunk)
    failures = 0
    with torch.inference_mode():
        clean = model.stem(x.unsqueeze(0))
        for _ in range(chunks):
            logits = model.body(clean + stem_noise(model, chunk, sigma, generator))
            own = logits[:, label].clone()
            logits[:, label] = -torch.inf
            failures += int((own <= logits.amax(dim=1)).sum())
    return failures, chunks * chunk
