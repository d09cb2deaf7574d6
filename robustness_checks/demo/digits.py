"""scikit-learn's bundled 8x8 digits as deterministic train/test tensors, plus noise images.

Near-OOD setting: the model from `model.digits_cnn_known_classes()` is trained only on
`KNOWN_CLASSES` (0-5); `test_set(classes=KNOWN_CLASSES)` is its in-distribution test data and
`test_set(classes=HELD_OUT_CLASSES)` (digits 6-9) its near-out-of-distribution data.
`noise_images()` is far-out-of-distribution data for any of the demo models.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_SIZE = 0.3
SPLIT_SEED = 0
IMAGE_SHAPE = (1, 8, 8)
NUM_CLASSES = 10
KNOWN_CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
HELD_OUT_CLASSES: tuple[int, ...] = (6, 7, 8, 9)


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


def _only_classes(
    x: torch.Tensor, y: torch.Tensor, classes: Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples of `x, y` whose label is in `classes` (all of them when None), in order."""
    if classes is None:
        return x, y
    if isinstance(classes, (int, str, bytes)):
        raise TypeError(f"classes must be a sequence of ints such as [6, 7], not {classes!r}")
    try:
        wanted = sorted({operator.index(c) for c in classes})
    except TypeError as error:
        raise TypeError(f"classes must be a sequence of ints, not {classes!r}") from error
    if not wanted:
        raise ValueError("classes must name at least one digit class")
    unknown = [c for c in wanted if not 0 <= c < NUM_CLASSES]
    if unknown:
        raise ValueError(f"classes {unknown} are not digit classes; use 0 to {NUM_CLASSES - 1}")
    keep = torch.isin(y, torch.tensor(wanted, dtype=y.dtype))
    return x[keep], y[keep]


def train_set(*, classes: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training images (N, 1, 8, 8) float32 in [0, 1] and int64 labels.

    With `classes`, only the examples of those digit classes, labels unchanged.
    """
    x, y, _, _ = _split()
    x, y = _only_classes(x, y, classes)
    # Clones, so callers cannot corrupt the cached split in place.
    return x.clone(), y.clone()


def test_set(
    limit: int | None = None, *, classes: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 540 test images (N, 1, 8, 8) float32 in [0, 1] and int64 labels, or the first `limit`.

    With `classes`, only the examples of those digit classes, labels unchanged, and `limit`
    counts after that filtering. `test_set(classes=HELD_OUT_CLASSES)` (digits 6-9) is the
    near-OOD data for the model trained on `KNOWN_CLASSES`.
    """
    _, _, x, y = _split()
    x, y = _only_classes(x, y, classes)
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
