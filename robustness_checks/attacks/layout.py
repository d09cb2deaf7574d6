"""The attack's rows: every (eps, example) pair in eps-major order, processed in bounded chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from robustness_checks.attacks.regions import (
    Bounds,
    NormName,
    RandomSource,
    Region,
    make_region,
    unit_noise,
)

# Default bound on the rows of one chunk: 2**22 input elements (16 MiB in float32), but never
# fewer rows than the caller's own batch.
MAX_CHUNK_ELEMENTS = 1 << 22


@dataclass
class Rows:
    """Row r is example r % n at eps[r // n]; eps, labels and step sizes are per row."""

    x: Tensor
    eps: Tensor
    labels: Tensor
    step: Tensor
    norm: NormName
    bounds: Bounds
    max_batch: int

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def count(self) -> int:
        return self.eps.shape[0]

    def chunks(self, pending: Tensor | None = None) -> Iterator[Tensor]:
        """Row indices in chunks of at most `max_batch`: all rows, or only those in `pending`."""
        if pending is None:
            for start in range(0, self.count, self.max_batch):
                stop = min(start + self.max_batch, self.count)
                yield torch.arange(start, stop, device=self.x.device)
        else:
            yield from pending.split(self.max_batch)

    def random_start(self, generator: RandomSource) -> Tensor:
        """A uniform point in the unit ball per example (not per row), so every eps (and target)
        shares it: an eps list gives the points of separate calls with the same generator."""
        return unit_noise(
            "uniform",
            self.norm,
            tuple(self.x.shape),
            generator=generator,
            device=self.x.device,
            dtype=self.x.dtype,
        )

    def examples(self, index: Tensor) -> Tensor:
        """The example index of each row in `index`."""
        return torch.remainder(index, self.n)

    def region(self, index: Tensor, examples: Tensor) -> Region:
        """The feasible region of the rows in `index`."""
        return make_region(
            self.norm,
            self.x.index_select(0, examples),
            self.eps.index_select(0, index),
            self.bounds,
        )
