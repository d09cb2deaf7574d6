"""A data set of 50,000 procedural 224-px images, made when read, and a small model for it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


class ProceduralImages(Dataset):
    """Smooth colour images drawn from a per-index seed (a 7 x 7 field upsampled to `size`):
    50,000 of them are 30 GB as float32, more than the machine's memory."""

    def __init__(self, count: int = 50_000, size: int = 224, classes: int = 10) -> None:
        self.count, self.size, self.classes = count, size, classes

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(index)
        label = index % self.classes
        field = torch.rand(1, 3, 7, 7, generator=generator)
        field[0, label % 3] += 0.5  # a class-dependent tint the model can read
        image = F.interpolate(field, size=(self.size, self.size), mode="bilinear")
        return image[0].clamp_(0.0, 1.0), label


def images(count: int = 50_000, size: int = 224) -> ProceduralImages:
    return ProceduralImages(count, size)


def small_cnn() -> nn.Module:
    """A seeded strided CNN (pooling to 28 px first) whose forward pass at 224 px is cheap."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.AvgPool2d(8),
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
