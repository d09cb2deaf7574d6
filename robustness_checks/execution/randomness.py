"""Is the model random? Two eval-mode passes over the same inputs, compared."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from robustness_checks.attacks.evaluation import training_flags
from robustness_checks.details import ModelRandomness

PROBE_EXAMPLES = 32
# Logits that differ by more than this share of their scale differ for real, not by the
# rounding of a nondeterministic GPU kernel.
RELATIVE_TOLERANCE = 1e-4


def detect_randomness(model: nn.Module, x: torch.Tensor) -> ModelRandomness:
    """Run `model` twice, as the check finds it, on the first PROBE_EXAMPLES inputs of `x` and
    compare: random when a prediction changes or a logit moves by more than RELATIVE_TOLERANCE
    of the largest logit. Dropout left in training mode counts; MC-dropout samplers, which
    switch dropout on for their own passes, do not make a model random. Normalisation layers
    run on their running statistics for the two passes, so they do not move."""
    x = x[:PROBE_EXAMPLES]
    with torch.no_grad(), _normalisation_frozen(model):
        first = model(x).float()
        second = model(x).float()
    change = (first - second).abs()
    largest = float(change.max()) if change.numel() else 0.0
    scale = float(first.abs().max()) if first.numel() else 0.0
    changed = int((first.argmax(dim=1) != second.argmax(dim=1)).sum()) if first.numel() else 0
    return ModelRandomness(
        random=bool(changed) or largest > RELATIVE_TOLERANCE * max(scale, 1.0),
        examples=int(x.shape[0]),
        changed_predictions=changed,
        largest_change=largest,
        forward_passes=2 * int(x.shape[0]),
    )


def randomness_warning(found: ModelRandomness) -> str:
    """The warning every report shows for a random model."""
    return (
        f"the model is random: two passes over the same {found.examples} inputs gave different "
        f"outputs ({found.changed_predictions} "
        f"{'prediction' if found.changed_predictions == 1 else 'predictions'} changed, largest "
        "logit change "
        f"{found.largest_change:.3g}); {found.handling}. Results repeat under the same seed "
        "(torch's generators are seeded per check and per batch)"
    )


def _normalisation_frozen(model: nn.Module) -> AbstractContextManager[None]:
    """Batch and instance norm modules in eval mode for the block (flags restored)."""
    return training_flags(
        model, lambda m: False if isinstance(m, (_BatchNorm, _InstanceNorm)) else m.training
    )
