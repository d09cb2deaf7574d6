"""Clean forward passes that a spec's checks share: computed once per data set, then reused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Outputs = dict[str, torch.Tensor]


def _storage_key(x: torch.Tensor) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """Where `x`'s rows start in memory and their shape and strides: a prefix view of the same
    tensor (a check's `limit`) has the same key."""
    return x.data_ptr(), tuple(x.shape[1:]), tuple(x.stride())


@dataclass
class _Entry:
    inputs: torch.Tensor  # held so its memory is not reused while the entry lives
    outputs: Outputs


@dataclass
class SharedPasses:
    """Per-example outputs (logits, tapped features) of one deterministic model on one device,
    keyed by what was read and the inputs' storage; `saved` counts the examples not recomputed."""

    _entries: dict[tuple, _Entry] = field(default_factory=dict)
    saved: int = 0

    def get(self, what: object, x: torch.Tensor, compute: Callable[[], Outputs]) -> Outputs:
        """The outputs `compute()` gives for inputs `x` (rows in order), computed at most once
        for `x` or any tensor whose first rows `x` are."""
        key = (what, *_storage_key(x))
        entry = self._entries.get(key)
        if entry is not None and len(entry.inputs) >= len(x):
            self.saved += len(x)
            return {name: value[: len(x)] for name, value in entry.outputs.items()}
        outputs = compute()
        self._entries[key] = _Entry(x, outputs)
        return outputs
