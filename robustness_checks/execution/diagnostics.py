"""Sanity checks of what the model gives a check, after AutoAttack's (Croce and Hein, 2020): a
model that returns probabilities where logits belong, input gradients that are zero (gradient
masking), and NaN or infinite logits at the points an attack keeps. They never stop a check;
they become warnings in its result (see `runner.execute`).

They keep their findings on the device (no host synchronisation while a check runs) until
`Diagnostics.findings()` reads them once, at the end of the check.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor, nn

# Warn about gradient masking when at least this share of the attacked examples has a zero (or
# non-finite) input gradient. Accuracy bounds are often set to the percent, so one percent of
# examples that an attack cannot move may already hide a missed bound. (AutoAttack warns for any.)
MASKING_SHARE = 0.01

PROBABILITIES_WARNING = (
    "the model seems to return probabilities, not logits: every output row of its first batch "
    "is non-negative and sums to 1. Checks apply a softmax to the model's outputs (confidence, "
    "calibration, uncertainty and OOD scores) and attacks ascend the cross-entropy of that "
    "softmax, so both measure the wrong thing and gradient attacks are weakened. Return logits: "
    "remove the model's final softmax (log_softmax outputs are fine, they are logits)"
)


def looks_like_probabilities(output: Tensor) -> Tensor | None:
    """A 0-dim bool tensor on the output's device: every row is non-negative and sums to 1 within
    the rounding of its dtype (AutoAttack's test). None for outputs it cannot judge."""
    if output.ndim != 2 or output.shape[0] == 0 or output.shape[1] < 2:
        return None
    if not output.is_floating_point():
        return None
    with torch.no_grad():
        values = output.detach()
        tolerance = max(1e-4, 16 * torch.finfo(values.dtype).eps)
        sums = values.sum(dim=1, dtype=torch.float32)
        return (values.amin() >= 0) & ((sums - 1).abs() <= tolerance).all()


def zero_gradient_rows(grad: Tensor) -> Tensor:
    """Per row (example) of `grad`: True where the gradient is all zero or not finite."""
    size = torch.linalg.vector_norm(grad.detach().flatten(1), ord=float("inf"), dim=1)
    return (size == 0) | ~torch.isfinite(size)


class AttackWatch:
    """Over every attack run while the watch is active, counts the examples whose input gradient
    was zero or not finite at the first gradient step, and the attack points kept in results
    whose logits are not finite. Counts stay on the device until read."""

    def __init__(self) -> None:
        self.examples = 0
        self.points = 0
        self._zero: Tensor | None = None
        self._nonfinite: Tensor | None = None

    def add_gradients(self, zero: Tensor, examples: int) -> None:
        """Add a device count `zero` of dead gradients among `examples` examples."""
        self.examples += examples
        self._zero = _add(self._zero, zero)

    def add_points(self, nonfinite: Tensor, points: int) -> None:
        """Add a device count `nonfinite` of points with NaN or infinite logits among `points`."""
        self.points += points
        self._nonfinite = _add(self._nonfinite, nonfinite)

    def zero(self) -> int:
        """The count of zero gradients (one host synchronisation)."""
        return 0 if self._zero is None else int(self._zero)

    def nonfinite(self) -> int:
        """The count of points with non-finite logits (one host synchronisation)."""
        return 0 if self._nonfinite is None else int(self._nonfinite)


def _add(total: Tensor | None, count: Tensor) -> Tensor:
    return count if total is None else total + count.to(total.device)


_ACTIVE_WATCH: ContextVar[AttackWatch | None] = ContextVar("attack_watch", default=None)


def report_zero_gradients(zero: Tensor, examples: int) -> None:
    """Called by attacks at their first gradient step; counted by the active watch, if any."""
    watch = _ACTIVE_WATCH.get()
    if watch is not None:
        watch.add_gradients(zero, examples)


def report_nonfinite_points(logits: Tensor) -> Tensor:
    """The count of rows of an attack result's `logits` (..., classes) that are not finite, on
    the device; counted by the active watch, if any."""
    count = (~torch.isfinite(logits.detach())).any(dim=-1).sum()
    watch = _ACTIVE_WATCH.get()
    if watch is not None:
        watch.add_points(count, logits[..., 0].numel())
    return count


class Diagnostics:
    """Watches one check: the first output of each model (probabilities?), the first input
    gradient of each attack (zero?) and the points attacks keep (finite logits?)."""

    def __init__(self, models: Sequence[Any]) -> None:
        self.attacks = AttackWatch()
        self._probability_flags: list[Tensor] = []
        self._handles: list[Any] = []
        for model in models:
            if isinstance(model, nn.Module):
                self._watch_first_output(model)

    def _watch_first_output(self, model: nn.Module) -> None:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            handle.remove()  # only the first batch: no cost on later forward passes
            if isinstance(output, Tensor):
                flag = looks_like_probabilities(output)
                if flag is not None:
                    self._probability_flags.append(flag)

        handle = model.register_forward_hook(hook)
        self._handles.append(handle)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def findings(self) -> dict[str, int]:
        """What was seen, as counts that add up over processes (reads the device once)."""
        probabilities = any(bool(flag) for flag in self._probability_flags)
        return {
            "probabilities": int(probabilities),
            "zero_gradients": self.attacks.zero(),
            "gradient_examples": self.attacks.examples,
            "nonfinite_points": self.attacks.nonfinite(),
            "attack_points": self.attacks.points,
        }


def findings_warnings(findings: dict[str, int]) -> list[str]:
    """The warning messages for `Diagnostics.findings()` (summed over processes)."""
    messages = []
    if findings["probabilities"]:
        messages.append(PROBABILITIES_WARNING)
    zero, examples = findings["zero_gradients"], findings["gradient_examples"]
    if examples and zero and zero >= MASKING_SHARE * examples:
        messages.append(masking_warning(zero, examples))
    nonfinite, points = findings.get("nonfinite_points", 0), findings.get("attack_points", 0)
    if nonfinite:
        messages.append(
            f"the model returned NaN or infinite logits at {nonfinite} of the {points} perturbed "
            "inputs that the attack kept, so their predictions mean nothing and the results "
            "under attack are unreliable. A classifier should return finite logits for every "
            "input within bounds: look for log(0), division by zero or overflow in the model"
        )
    return messages


def masking_warning(zero: int, examples: int) -> str:
    return (
        f"gradient masking suspected: the input gradient was zero (or not finite) for {zero} of "
        f"{examples} examples at the attack's first gradient step, so a gradient attack cannot "
        "move them and results under attack look better than they are. Common causes: the model "
        "returns probabilities or saturated logits, or uses steps without useful gradients "
        "(argmax, rounding, thresholds, .detach()); compare with method: auto or square (a "
        "gradient-free attack), or method: uniform or gaussian as a control, before trusting "
        "the result"
    )


@contextmanager
def watching(models: Sequence[Any]) -> Iterator[Diagnostics]:
    """Diagnostics for the models (hooks on their first output) and for every attack run in the
    block (their first input gradients and the points they keep)."""
    diagnostics = Diagnostics(models)
    token = _ACTIVE_WATCH.set(diagnostics.attacks)
    try:
        yield diagnostics
    finally:
        _ACTIVE_WATCH.reset(token)
        diagnostics.close()
