"""Thumbnails of large image inputs for the report: block means, largest change per block."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

THUMBNAIL_SIDE = 64  # px, longer side of the pictures kept of inputs above SMALL_INPUT values


def thumbnail_shape(shape: list[int] | tuple[int, ...]) -> list[int] | None:
    """(C, h, w) of the thumbnail of an image input of `shape` ((C, H, W) or (H, W)), its longer
    side THUMBNAIL_SIDE; None when the input is no picture (other ranks, 2 or 4+ channels)."""
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape[1:]) < 1:
        return None
    channels, height, width = shape
    factor = min(1.0, THUMBNAIL_SIDE / max(height, width))
    return [channels, max(1, round(height * factor)), max(1, round(width * factor))]


def shrink_mean(planes: torch.Tensor, size: list[int]) -> torch.Tensor:
    """(C, H, W) values averaged over blocks to (C, *size): a thumbnail of an image."""
    return F.adaptive_avg_pool2d(planes[None].double(), size)[0]


def shrink_peak(planes: torch.Tensor, size: list[int]) -> torch.Tensor:
    """(C, H, W) values shrunk to (C, *size) keeping each block's value of largest magnitude
    (its sign too): a perturbation or saliency keeps its size instead of averaging away."""
    planes = planes.double()
    _, where = F.adaptive_max_pool2d(planes.abs()[None], size, return_indices=True)
    return planes.flatten(1).gather(1, where[0].flatten(1)).reshape(planes.shape[0], *size)


def thumbnail_rows(x: torch.Tensor, perturbed: torch.Tensor) -> dict[str, Any]:
    """A large image input's report pictures: a thumbnail of it (block means) and of its
    perturbation (largest change per block), `source_shape`, and the full-size perturbed input
    as `pixels` for its saliency (never written); {} for an input that is no picture."""
    size = thumbnail_shape(list(x.shape))
    if size is None:
        return {}
    clean = x.detach().cpu().double().reshape(size[0], *x.shape[-2:])
    delta = perturbed.detach().cpu().double().reshape(clean.shape) - clean
    return {
        "shape": size,
        "source_shape": list(x.shape),
        "input": [round(v, 4) for v in shrink_mean(clean, size[1:]).flatten().tolist()],
        "perturbation": [round(v, 5) for v in shrink_peak(delta, size[1:]).flatten().tolist()],
        "pixels": perturbed.detach().to("cpu", copy=True),
    }
