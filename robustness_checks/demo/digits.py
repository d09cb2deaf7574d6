"""scikit-learn's bundled 8x8 digits as deterministic train/test tensors, plus noise images."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_SIZE = 0.3
SPLIT_SEED = 0
IMAGE_SHAPE = (1, 8, 8)


@lru_cache(maxsize=1)
def _split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels
    )
    return (
        torch.from_numpy(x_train).unsqueeze(1),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test).unsqueeze(1),
        torch.from_numpy(y_test),
    )


def train_set() -> tuple[torch.Tensor, torch.Tensor]:
    """Training images (N, 1, 8, 8) float32 in [0, 1] and int64 labels."""
    x, y, _, _ = _split()
    # Clones, so callers cannot corrupt the cached split in place.
    return x.clone(), y.clone()


def test_set(limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 540 test images (N, 1, 8, 8) float32 in [0, 1] and int64 labels, or the first `limit`."""
    _, _, x, y = _split()
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x.clone(), y.clone()


# The name starts with "test", so pytest would collect it as a test wherever it is imported.
test_set.__test__ = False  # type: ignore[attr-defined]


def noise_images(count: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform noise images in [0, 1] shaped like digits, with all-zero labels (far-OOD data)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((count, *IMAGE_SHAPE), generator=generator, dtype=torch.float32)
    return x, torch.zeros(count, dtype=torch.int64)
