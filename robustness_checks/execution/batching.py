"""Batches of per-example work that halve on an out-of-memory error instead of failing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the RuntimeErrors other backends raise for it."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def release_cached_memory() -> None:
    """Give the caching allocators' free blocks back so the retry can use them."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()


class AdaptiveBatches:
    """Runs work over a range of positions in batches, halving the batch size on OOM.

    The batch that ran out of memory is retried in halves, so no position is skipped or done
    twice in the results; the smaller size is kept for the rest of the range (and for later
    calls on the same object), since the next batch would most likely fail the same way.
    """

    def __init__(self, batch_size: int, label: str = "") -> None:
        self.batch_size = max(1, int(batch_size))
        self.label = label
        self.halvings = 0

    def run(
        self, positions: range, work: Callable[[range], T], results: list[T] | None = None
    ) -> list[T]:
        """[work(batch) for each batch of `positions`], in order, appended to `results` (which
        the caller keeps when a batch raises: the batches done before it)."""
        results = [] if results is None else results
        start = positions.start
        while start < positions.stop:
            stop = min(start + self.batch_size, positions.stop)
            try:
                results.append(work(range(start, stop)))
            except Exception as error:
                if not is_out_of_memory(error) or stop - start == 1:
                    raise
                release_cached_memory()
                self.batch_size = max(1, (stop - start) // 2)
                self.halvings += 1
                print(
                    f"robustness_checks: {self.label or 'batch'} ran out of memory at "
                    f"{stop - start} examples; retrying with batch size {self.batch_size}",
                    file=sys.stderr,
                )
                continue
            start = stop
        return results
