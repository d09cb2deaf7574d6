"""OOD and failure scores from logits, oriented so HIGHER means more likely OOD or an error."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustness_checks.attacks.evaluation import eval_mode
from robustness_checks.uncertainty.samplers import model_device, predictive_entropy


def msp_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """1 - max softmax probability of logits / temperature (Hendrycks & Gimpel), shape (n,)."""
    return 1.0 - (logits.float() / temperature).softmax(dim=-1).amax(dim=-1)


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """The energy E(x) = -T logsumexp(logits / T) (Liu et al. 2020); OOD inputs have higher energy,
    so the score is E itself (the negative of the "free energy" confidence T logsumexp)."""
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=-1)


def entropy_score(probs_or_logits: Tensor, *, from_logits: bool | None = None) -> Tensor:
    """Predictive entropy in nats, shape (n,); higher means more uncertain.

    Takes (T, n, K) probability samples, (n, K) probabilities or (n, K) logits. With
    `from_logits` None, a 2-D input is read as probabilities when every value is in [0, 1] and
    every row sums to 1 (within 1e-4), and as logits otherwise.
    """
    values = probs_or_logits.float()
    if values.dim() == 3:
        return predictive_entropy(values)
    if from_logits is None:
        in_range = ((values >= 0) & (values <= 1)).all()
        normalised = ((values.sum(dim=-1) - 1.0).abs() <= 1e-4).all()
        from_logits = not bool(in_range & normalised)
    if not from_logits:
        return predictive_entropy(values)
    log_probs = values.log_softmax(dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def odin_score(
    model: nn.Module,
    x: Tensor,
    *,
    temperature: float = 1000.0,
    epsilon: float = 0.0014,
    bounds: tuple[float, float] | None = None,
    max_batch_elements: int = 2**22,
) -> Tensor:
    """ODIN (Liang et al. 2018): 1 - max softmax(logits(x~) / T) with x~ = x - epsilon *
    sign(grad_x CE(logits(x) / T, predicted class)), shape (n,).

    The step moves toward a HIGHER max softmax, which helps in-distribution inputs more than OOD
    ones. It is taken in raw input space (normalisation lives inside the model), then clipped to
    `bounds`. Gradients are taken with respect to the input only (no parameter `.grad` is
    filled); the model runs in eval mode and its flags are restored. With epsilon 0 this is
    `msp_score(model(x), temperature)`.
    """
    if temperature <= 0 or epsilon < 0:
        raise ValueError(
            f"ODIN needs temperature > 0 and epsilon >= 0, got {temperature}, {epsilon}"
        )
    x = x.detach().to(model_device(model, x.device))
    chunk = max(1, max_batch_elements // max(1, math.prod(x.shape[1:])))
    parts = []
    with eval_mode(model):
        for batch in x.split(chunk):
            if epsilon > 0:
                batch = _odin_input(model, batch, temperature, epsilon, bounds)
            with torch.no_grad():
                parts.append(msp_score(model(batch), temperature))
    return torch.cat(parts) if parts else x.new_zeros(0, dtype=torch.float32)


def _odin_input(
    model: nn.Module,
    x: Tensor,
    temperature: float,
    epsilon: float,
    bounds: tuple[float, float] | None,
) -> Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        leaf = x.clone().requires_grad_(True)
        scaled = model(leaf).float() / temperature
        # A summed loss keeps each input's gradient independent of the batch.
        loss = F.cross_entropy(scaled, scaled.argmax(dim=-1), reduction="sum")
        (gradient,) = torch.autograd.grad(loss, leaf)
    moved = x - epsilon * gradient.sign()
    if bounds is not None:
        moved = moved.clamp(bounds[0], bounds[1])
    return moved
