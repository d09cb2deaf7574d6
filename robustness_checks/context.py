"""`CheckContext`: everything a check function needs: model, examples, device, seeds, bounds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from robustness_checks.errors import ModelOutputError
from robustness_checks.examples import Examples
from robustness_checks.seeding import numpy_generator, torch_generator


class EvaluationCounter:
    """Counts forward passes over single inputs (a batch of b inputs counts b)."""

    def __init__(self) -> None:
        self.count = 0


class Counted(nn.Module):
    """Wraps a model so every forward pass adds its batch size to a shared counter."""

    def __init__(self, model: nn.Module, counter: EvaluationCounter):
        super().__init__()
        self.model = model
        self.counter = counter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counter.count += int(x.shape[0])
        return self.model(x)


@dataclass
class CheckContext:
    """The model under test (counted, eval mode, on `device`) and its examples, for one check."""

    model: nn.Module
    examples: Examples
    device: torch.device
    check_name: str
    seed: int = 0
    confidence: float = 0.95
    bounds: tuple[float, float] | None = (0.0, 1.0)
    ensemble: list[nn.Module] = field(default_factory=list)
    counter: EvaluationCounter = field(default_factory=EvaluationCounter)
    extra_data: dict[str, Examples] = field(default_factory=dict)  # e.g. ood_data

    @classmethod
    def create(
        cls,
        model: nn.Module,
        examples: Examples,
        device: torch.device,
        check_name: str,
        *,
        seed: int = 0,
        confidence: float = 0.95,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        ensemble: list[nn.Module] | None = None,
        extra_data: dict[str, Examples] | None = None,
    ) -> CheckContext:
        """A context whose model and ensemble members are moved to `device`, put in eval mode
        and counted."""
        counter = EvaluationCounter()
        members = [Counted(member.to(device).eval(), counter) for member in ensemble or []]
        return cls(
            model=Counted(model.to(device).eval(), counter),
            examples=examples,
            device=device,
            check_name=check_name,
            seed=seed,
            confidence=confidence,
            bounds=bounds,
            ensemble=members,
            counter=counter,
            extra_data=dict(extra_data or {}),
        )

    @property
    def evaluations(self) -> int:
        return self.counter.count

    def generator(self, *keys: object) -> torch.Generator:
        """A torch generator on the device, seeded from (seed, check name, *keys)."""
        return torch_generator(self.seed, self.check_name, *keys, device=self.device)

    def numpy_rng(self, *keys: object) -> np.random.Generator:
        """A numpy generator seeded from (seed, check name, *keys)."""
        return numpy_generator(self.seed, self.check_name, *keys)

    @torch.inference_mode()
    def logits(self) -> torch.Tensor:
        """Logits of the model on every example, gathered on the CPU as float32."""
        parts = [self.model(x).float() for _, x, _ in self.examples.batches(self.device)]
        logits = torch.cat(parts).cpu()
        check_logits(logits, len(self.examples))
        return logits


def check_logits(logits: torch.Tensor, count: int) -> None:
    """Raise `ModelOutputError` unless `logits` is a finite (count, classes) matrix."""
    if logits.dim() != 2 or logits.shape[0] != count:
        raise ModelOutputError(
            f"the model returned shape {tuple(logits.shape)} for {count} inputs; a classifier must "
            "return logits of shape (batch, classes)"
        )
    finite = torch.isfinite(logits).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ModelOutputError(
            f"the model returned NaN or infinite logits for {bad.numel()} of {count} inputs "
            f"(first at index {int(bad[0])})"
        )
