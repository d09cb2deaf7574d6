"""Random models: expectation over transformation for attacks, and points judged by fresh draws."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustness_checks.attacks.layout import MAX_CHUNK_ELEMENTS

DEFAULT_EOT = 20  # draws averaged per attack step (AutoAttack's rand version)
DEFAULT_DRAWS = 32  # fresh draws judging each kept point


class Expectation(nn.Module):
    """The model's logits averaged over `draws` evaluations of each input (expectation over
    transformation, Athalye et al. 2018): one batched pass of draws x n rows, so an attack that
    differentiates it follows the gradient of the averaged logits without knowing it."""

    def __init__(self, model: nn.Module, draws: int) -> None:
        super().__init__()
        if draws < 1:
            raise ValueError(f"eot must be at least 1, got {draws}")
        self.model, self.draws = model, draws

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        if self.draws == 1:
            return self.model(x)
        logits = self.model(x.repeat(self.draws, *([1] * (x.ndim - 1))))
        return logits.view(self.draws, n, -1).mean(dim=0)


def expected_correct(
    model: nn.Module, x: Tensor, y: Tensor, draws: int, max_batch: int | None = None
) -> Tensor:
    """Per example, the share of `draws` fresh forward passes of `model` at `x` that predict
    `y`: float (n,). Draws come from torch's global generators as they stand, so they are not
    those an attack used before."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    n = x.shape[0]
    rows = max_batch or max(n, MAX_CHUNK_ELEMENTS // max(1, math.prod(x.shape[1:])))
    per_pass = max(1, rows // n)  # draws stacked into one pass
    hits = torch.zeros(n, device=x.device, dtype=torch.float64)
    with torch.no_grad():
        done = 0
        while done < draws:
            take = min(per_pass, draws - done)
            stacked = x.repeat(take, *([1] * (x.ndim - 1))) if take > 1 else x
            predictions = model(stacked).argmax(dim=1).view(take, n)
            hits += (predictions == y.to(predictions.device)).sum(dim=0)
            done += take
    return (hits / draws).float()


@dataclass(frozen=True)
class Judged:
    """Fresh-draw verdicts on an attack's kept points: `expected` (len(eps), n) and `clean` (n,)
    expected accuracies, and the forward passes they took; None for a deterministic model."""

    expected: Tensor | None = None
    clean: Tensor | None = None
    forward_passes: int = 0


def judge(
    model: nn.Module, x: Tensor, y: Tensor, points: Tensor, draws: int, max_batch: int | None
) -> Judged:
    """Judge the clean inputs `x` and each eps's kept `points` (len(eps), n, ...) by `draws`
    fresh passes of `model` each."""
    clean = expected_correct(model, x, y, draws, max_batch)
    expected = torch.stack([expected_correct(model, p, y, draws, max_batch) for p in points])
    return Judged(expected, clean, draws * x.shape[0] * (points.shape[0] + 1))
