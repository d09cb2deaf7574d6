"""The outcome of one attack run: best points, their predictions and the evaluation count."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from robustness_checks.execution.diagnostics import report_nonfinite_points


@dataclass(repr=False)
class AttackResult:
    """Best point found per eps and example, with the model's output there.

    Tensors indexed by eps come first: `adversarial` is (len(eps), n, *input shape), `logits`
    (len(eps), n, classes), `predictions`, `confidences`, `loss` and `success` (len(eps), n).
    `loss` is the attack objective at the point (cross-entropy to the label; minus cross-entropy
    to the target when targeted). `success` means misclassified (untargeted) or predicted as the
    target (targeted). `forward_passes` counts forward passes over single inputs, clean pass
    included; `backward_passes` counts input-gradient computations likewise.
    `zero_gradients` (a 0-dim count, None for attacks without gradients) counts the examples
    whose input gradient was zero or not finite at the first gradient step, among
    `gradient_examples`: many of them mean gradient masking, and an attack that cannot move
    them overestimates robustness. `nonfinite` (0-dim) counts the kept points whose logits are
    NaN or infinite: their predictions mean nothing.
    For a random model (`eot` not None): `logits` are averaged over `eot` draws, points are kept
    by loss alone, and fresh draws judge them: `expected_accuracy` (len(eps), n) and
    `clean_expected_accuracy` (n,) hold each example's share of correct draws at the kept point
    and at the clean input, `accuracy()` and `clean_accuracy()` average them, and `success`
    means misclassified by at least half of the fresh draws (expected accuracy below 1/2).
    """

    method: str
    norm: str
    eps: list[float]
    adversarial: Tensor
    logits: Tensor
    loss: Tensor
    success: Tensor
    clean_logits: Tensor
    targets: Tensor | None
    forward_passes: int
    backward_passes: int
    zero_gradients: Tensor | None = None
    gradient_examples: int = 0
    eot: int | None = None
    expected_accuracy: Tensor | None = None
    clean_expected_accuracy: Tensor | None = None
    predictions: Tensor = field(init=False)
    nonfinite: Tensor = field(init=False)
    confidences: Tensor = field(init=False)
    clean_predictions: Tensor = field(init=False)

    def __post_init__(self) -> None:
        dtype = torch.promote_types(self.logits.dtype, torch.float32)
        probabilities = torch.softmax(self.logits, dim=-1, dtype=dtype)
        self.confidences, self.predictions = probabilities.max(dim=-1)
        self.clean_predictions = self.clean_logits.argmax(dim=-1)
        self.nonfinite = report_nonfinite_points(self.logits)

    def accuracy(self, y: Tensor) -> Tensor:
        """Accuracy at the adversarial points, per eps: (len(eps),); for a random model the mean
        over examples of the expected accuracy judged by fresh draws."""
        if self.expected_accuracy is not None:
            return self.expected_accuracy.float().mean(dim=1)
        return (self.predictions == y.to(self.predictions.device)).float().mean(dim=1)

    def clean_accuracy(self, y: Tensor) -> Tensor:
        """Accuracy on the clean inputs, a 0-dim tensor (expected, for a random model)."""
        if self.clean_expected_accuracy is not None:
            return self.clean_expected_accuracy.float().mean()
        return (self.clean_predictions == y.to(self.clean_predictions.device)).float().mean()

    def success_rate(self) -> Tensor:
        """Fraction of examples where the attack succeeded, per eps: (len(eps),)."""
        return self.success.float().mean(dim=1)

    def perturbation_norms(self, x: Tensor) -> Tensor:
        """Norm (of this attack's kind) of adversarial - x: (len(eps), n)."""
        delta = (self.adversarial - x.to(self.adversarial.device)).flatten(2)
        order = float("inf") if self.norm == "inf" else 2.0
        return torch.linalg.vector_norm(delta, ord=order, dim=2)

    def __repr__(self) -> str:
        rates = [round(v, 4) for v in self.success_rate().tolist()]
        return (
            f"AttackResult(method={self.method!r}, norm={self.norm!r}, eps={self.eps}, "
            f"n={self.success.shape[1]}, success_rate={rates}, "
            f"forward_passes={self.forward_passes})"
        )
