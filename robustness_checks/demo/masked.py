"""Demo models that mask their gradients (scaled logits, quantised inputs) for docs and tests."""

from __future__ import annotations

import torch
from torch import nn

from robustness_checks.demo.model import digits_cnn

# Both are no more robust than the demo CNN (the scaled copy predicts exactly what it predicts),
# yet a gradient attack reports far higher robust accuracy on them: see docs/adversarial.md and
# examples/expected-failures/.


class ScaledLogits(nn.Module):
    """`model`'s logits times `scale`: same predictions, a saturated softmax, zero CE gradients."""

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.scale


class QuantisedInputs(nn.Module):
    """`model` on inputs in [0, 1] rounded to `levels` values: shattered (zero) input gradients."""

    def __init__(self, model: nn.Module, levels: int) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.model, self.steps = model, levels - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * self.steps) / self.steps)


def scaled_logits_cnn(scale: float = 1000.0, seed: int = 0) -> nn.Module:
    """The bundled digits CNN (weights of `seed`) with its logits multiplied by `scale`."""
    return ScaledLogits(digits_cnn(pretrained=True, seed=seed), scale).eval()


def quantised_cnn(levels: int = 4, seed: int = 0) -> nn.Module:
    """The bundled digits CNN (weights of `seed`) on inputs rounded to `levels` levels."""
    return QuantisedInputs(digits_cnn(pretrained=True, seed=seed), levels).eval()
