"""Per-row best points: an adversarial point beats any other, then the higher loss wins."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Candidates:
    """Points with their logits, loss and success flag, one per row."""

    x: Tensor
    logits: Tensor
    loss: Tensor
    success: Tensor

    def update(self, x: Tensor, logits: Tensor, loss: Tensor, success: Tensor) -> None:
        """Keep, per row, the better of the current best and the new point (in place, no sync)."""
        # Same success: the higher loss wins; otherwise the new point wins iff it is the success.
        better = torch.where(success == self.success, loss > self.loss, success)
        torch.where(better.view(-1, *([1] * (x.ndim - 1))), x, self.x, out=self.x)
        torch.where(better.unsqueeze(1), logits, self.logits, out=self.logits)
        torch.where(better, loss, self.loss, out=self.loss)
        self.success |= success

    def select(self, index: Tensor) -> Candidates:
        """The rows in `index`, as a new compact copy."""
        return Candidates(
            self.x.index_select(0, index),
            self.logits.index_select(0, index),
            self.loss.index_select(0, index),
            self.success.index_select(0, index),
        )

    def put(self, index: Tensor, other: Candidates) -> None:
        """Overwrite the rows in `index` with the rows of `other`."""
        self.x.index_copy_(0, index, other.x)
        self.logits.index_copy_(0, index, other.logits)
        self.loss.index_copy_(0, index, other.loss)
        self.success.index_copy_(0, index, other.success)
