"""Inputs read from a data set batch by batch when asked for, so data larger than memory runs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from robustness_checks.errors import LoadError

# `stream: auto` streams a data set whose inputs would take more than this in memory.
STREAM_ABOVE_BYTES = 1 << 30

Index = slice | int | torch.Tensor | np.ndarray | list[int]
SizeError = Callable[[int, tuple[int, ...], int, tuple[int, ...]], str]


class StreamedInputs:
    """The inputs of the first `count` items of `dataset` (each an (input, label) pair), read
    only when rows are asked for: indexing by a slice, an index tensor or an int gives a float32
    tensor of those rows, as indexing the whole stacked tensor would. Nothing is cached, so a
    pass over the data holds one batch at a time.

    `data_ptr()` and `stride()` identify the data set (not a memory address), so shared clean
    passes treat a prefix (`prefix`) like a prefix view of a tensor."""

    def __init__(
        self,
        dataset: Dataset[Any],
        count: int,
        item_shape: tuple[int, ...],
        size_error: SizeError | None = None,
    ) -> None:
        self.dataset = dataset
        self.count = count
        self.item_shape = item_shape
        self.dtype = torch.float32
        self.device = torch.device("cpu")
        self._size_error = size_error

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.count, *self.item_shape))

    def __len__(self) -> int:
        return self.count

    def dim(self) -> int:
        return 1 + len(self.item_shape)

    def is_floating_point(self) -> bool:
        return True

    def data_ptr(self) -> int:
        return id(self.dataset)

    def stride(self) -> tuple[int, ...]:
        sizes = self.shape
        return tuple(math.prod(sizes[i + 1 :]) for i in range(len(sizes)))

    def prefix(self, count: int) -> StreamedInputs:
        """The first `count` rows, still streamed."""
        return StreamedInputs(
            self.dataset, min(count, self.count), self.item_shape, self._size_error
        )

    def __getitem__(self, key: Index) -> torch.Tensor:
        if isinstance(key, int):
            return self._rows([self._checked(key)])[0]
        if isinstance(key, slice):
            rows = list(range(*key.indices(self.count)))
        else:
            flat = torch.as_tensor(np.asarray(key) if isinstance(key, list) else key).reshape(-1)
            if flat.dtype == torch.bool:
                flat = torch.nonzero(flat).reshape(-1)
            rows = [self._checked(int(i)) for i in flat]
        return self._rows(rows)

    def batches(self, size: int) -> Iterator[torch.Tensor]:
        """Every row in order, `size` at a time."""
        for start in range(0, self.count, size):
            yield self[start : min(start + size, self.count)]

    def _checked(self, index: int) -> int:
        if not -self.count <= index < self.count:
            raise IndexError(f"index {index} is out of range for {self.count} streamed inputs")
        return index % self.count

    def _rows(self, rows: list[int]) -> torch.Tensor:
        out = torch.empty((len(rows), *self.item_shape), dtype=self.dtype)
        for position, row in enumerate(rows):
            value = _as_float(self.dataset[row][0])
            if tuple(value.shape) != self.item_shape:
                raise LoadError(self._mismatch(row, tuple(value.shape)))
            out[position] = value
        return out

    def _mismatch(self, row: int, shape: tuple[int, ...]) -> str:
        if self._size_error is not None:
            return self._size_error(0, self.item_shape, row, shape)
        return (
            f"item {row} of the data set has shape {shape}, but item 0 has {self.item_shape}; "
            "every input must have the same shape"
        )


def _as_float(value: Any) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if not tensor.is_floating_point():
        raise LoadError(
            f"the data set gives {tensor.dtype} inputs; inputs must be floating point in raw "
            "input space (for 8-bit images convert with x.float() / 255 or a ToDtype transform)"
        )
    return tensor.float()


def dataset_labels(dataset: Dataset[Any], count: int) -> torch.Tensor:
    """The labels of the first `count` items: from `targets` where the data set lists them
    (ImageFolder, torchvision data sets), else by reading each item once."""
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) >= count:
        return torch.as_tensor(np.asarray(targets[:count])).reshape(-1).long()
    return torch.tensor([int(dataset[i][1]) for i in range(count)], dtype=torch.long)


def should_stream(stream: bool | str, count: int, item_shape: tuple[int, ...]) -> bool:
    """Whether to stream: as asked, or for `auto` when the inputs exceed STREAM_ABOVE_BYTES."""
    if stream != "auto":
        return bool(stream)
    return count * math.prod(item_shape) * 4 > STREAM_ABOVE_BYTES
