"""Model evaluation for attacks: eval mode, counted forward passes, input gradients, objective."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustness_checks.errors import ModelOutputError
from robustness_checks.execution.diagnostics import report_zero_gradients, zero_gradient_rows


@contextmanager
def training_flags(model: nn.Module, training: Callable[[nn.Module], bool]) -> Iterator[None]:
    """Each module's training flag set to `training(module)` for the block; the original flags
    are restored afterwards. Flags are set directly rather than through `.train()`, which
    models may override."""
    flags = [(module, module.training) for module in model.modules()]
    for module, _ in flags:
        module.training = training(module)
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def eval_mode(model: nn.Module) -> AbstractContextManager[None]:
    """Every module in eval mode for the block; the original flags are restored afterwards."""
    return training_flags(model, lambda _: False)


class Evaluator:
    """Runs the model on raw inputs; counts forward and backward passes over single inputs
    (`per_input` model passes per input row when the model is an `Expectation` over draws).

    At the first input gradient it also counts the examples whose gradient is zero or not
    finite (`zero_gradients`, a device count, among `gradient_examples`): the sign of gradient
    masking. The first forward pass is the clean batch, so its size is the number of examples.
    """

    def __init__(self, model: nn.Module, per_input: int = 1) -> None:
        self.model = model
        self.per_input = per_input  # model passes per input row (draws of an Expectation)
        self.forward_passes = 0
        self.backward_passes = 0
        self.classes: int | None = None
        self.examples: int | None = None
        self.zero_gradients: Tensor | None = None
        self.gradient_examples = 0

    def __call__(self, x: Tensor) -> Tensor:
        """Logits of `x`; differentiable when `x` requires grad."""
        with torch.set_grad_enabled(x.requires_grad):
            logits = self.model(x)
        if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ModelOutputError(
                f"the model must return logits of shape ({x.shape[0]}, classes), got {shape}"
            )
        if self.classes is None:
            self.classes = logits.shape[1]
            self.examples = x.shape[0]
        self.forward_passes += x.shape[0] * self.per_input
        return logits

    def input_gradient(self, loss: Tensor, x: Tensor) -> Tensor:
        """d sum(loss) / dx by autograd.grad, so no parameter's .grad is ever touched.

        Read-only: it may be an expanded view with overlapping memory (a model whose first
        operation broadcasts its input, such as x.sum(1, keepdim=True).expand_as(x)) or a tensor
        the model holds, so attacks never write into it."""
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss.sum(), x)
        self.backward_passes += x.shape[0] * self.per_input
        if self.zero_gradients is None:
            # The first step's rows start with every example once (eps-major rows); one
            # reduction, kept on the device.
            first = grad[: self.examples or grad.shape[0]]
            self.zero_gradients = zero_gradient_rows(first).sum()
            self.gradient_examples = first.shape[0]
            report_zero_gradients(self.zero_gradients, self.gradient_examples)
        return grad


class Objective:
    """The per-row loss an attack ascends and the per-row success test.

    Untargeted: cross-entropy to the true label; success when the prediction differs from it.
    Targeted: minus the cross-entropy to the target; success when the prediction equals it.
    """

    def __init__(self, targeted: bool) -> None:
        self.targeted = targeted

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        # log_softmax + gather rather than cross_entropy(reduction="none"), whose per-row kernel
        # starts a parallel region on every call even for a few hundred rows.
        log_p = F.log_softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
        return log_p if self.targeted else log_p.neg()

    def success(self, logits: Tensor, labels: Tensor) -> Tensor:
        predictions = logits.argmax(dim=1)
        return predictions == labels if self.targeted else predictions != labels


class KeptByLoss:
    """An objective for a random model: its loss, but success never fires, so points are kept
    by loss alone and no row stops early. A point that one lucky draw misclassifies is not
    broken; fresh draws judge the kept points afterwards (`expectation.expected_correct`)."""

    def __init__(self, objective: Any) -> None:
        self.objective = objective
        self.targeted = objective.targeted

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return self.objective.loss(logits, labels)

    def success(self, logits: Tensor, labels: Tensor) -> Tensor:
        return torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
