"""Labelled examples in raw input space, and turning user data of any common form into them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from robustness_checks.errors import LoadError
from robustness_checks.execution.contracts import BOOL_LABELS

if TYPE_CHECKING:
    from robustness_checks.loading.streamed import StreamedInputs


@dataclass(frozen=True)
class Examples:
    """Inputs `x` (float, raw input space) and integer labels `y`, kept on the CPU. For data
    larger than memory `x` is `StreamedInputs`: rows are read when indexed, a batch at a time."""

    x: torch.Tensor | StreamedInputs
    y: torch.Tensor
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise LoadError(f"x has {self.x.shape[0]} examples but y has {self.y.shape[0]}")
        if self.y.dim() != 1:
            raise LoadError(
                f"y must be a vector of integer labels, got shape {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(self, device: torch.device) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """(positions, x, y) batches moved to `device`."""
        for start in range(0, len(self), self.batch_size):
            part = slice(start, min(start + self.batch_size, len(self)))
            yield (
                part,
                self.x[part].to(device, non_blocking=True),
                self.y[part].to(device, non_blocking=True),
            )

    @property
    def streamed(self) -> bool:
        return not isinstance(self.x, torch.Tensor)

    def take(self, limit: int | None) -> Examples:
        """The first `limit` examples (all of them for None)."""
        if limit is None or limit >= len(self):
            return self
        x = self.x[:limit] if isinstance(self.x, torch.Tensor) else self.x.prefix(limit)
        return Examples(x, self.y[:limit], self.batch_size)

    def input_batches(self) -> Iterator[torch.Tensor]:
        """The inputs in order, a batch at a time, on the CPU."""
        for start in range(0, len(self), self.batch_size):
            yield self.x[start : min(start + self.batch_size, len(self))]

    def value_range(self) -> tuple[float, float]:
        """The smallest and largest input value; for streamed inputs one pass, read once and
        kept, since every check that perturbs inputs asks for it."""
        if isinstance(self.x, torch.Tensor):
            return float(self.x.min()), float(self.x.max())
        if "_value_range" not in self.__dict__:
            ranges = [(float(x.min()), float(x.max())) for x in self.input_batches()]
            found = min(low for low, _ in ranges), max(high for _, high in ranges)
            object.__setattr__(self, "_value_range", found)  # a cache on a frozen dataclass
        return self.__dict__["_value_range"]


def as_examples(data: Any, batch_size: int = 256, limit: int | None = None) -> Examples:
    """Examples from an (x, y) pair of tensors or arrays, a Dataset, a DataLoader or Examples."""
    if isinstance(data, Examples):
        return data.take(limit)
    if isinstance(data, torch.Tensor | np.ndarray):
        # Inputs alone (OOD data): the labels are unknown, written as -1.
        x = _as_tensor(data)
        return _typed(x, torch.full((x.shape[0],), -1), batch_size).take(limit)
    if isinstance(data, tuple | list) and len(data) == 2 and not isinstance(data, Dataset):
        x, y = (_as_tensor(part) for part in data)
        return _typed(x, y, batch_size).take(limit)
    if isinstance(data, DataLoader):
        return _from_batches(iter(data), batch_size, limit)
    if isinstance(data, Dataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        return _from_batches(iter(loader), batch_size, limit)
    raise LoadError(
        f"cannot use a {type(data).__name__} as data: give an (x, y) pair of tensors, "
        "a torch Dataset of (input, label) or a DataLoader"
    )


def _from_batches(batches: Iterator[Any], batch_size: int, limit: int | None) -> Examples:
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    count = 0
    for batch in batches:
        if not isinstance(batch, tuple | list) or len(batch) < 2:
            raise LoadError("each item of the data set must be an (input, label) pair")
        xs.append(_as_tensor(batch[0]))
        ys.append(_as_tensor(batch[1]).reshape(-1))
        count += xs[-1].shape[0]
        if limit is not None and count >= limit:
            break
    if not xs:
        raise LoadError("the data set is empty")
    return _typed(torch.cat(xs), torch.cat(ys), batch_size).take(limit)


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


def _typed(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Examples:
    if not x.is_floating_point():
        raise LoadError(
            f"x must be floating point in raw input space (got {x.dtype}); convert it, "
            "for example x.float() / 255 for 8-bit images"
        )
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise LoadError("y must hold integer class labels, got fractional values")
    if y.dtype == torch.bool:
        raise LoadError(BOOL_LABELS)
    return Examples(x.float().contiguous(), y.long().contiguous(), batch_size)
