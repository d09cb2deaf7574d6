"""Predictive samplers (softmax, MC dropout, deep ensembles) and uncertainty measures on them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from robustness_checks.attacks.evaluation import eval_mode, training_flags
from robustness_checks.errors import ModelOutputError
from robustness_checks.execution.seeding import seeded_torch

if TYPE_CHECKING:
    from robustness_checks.uncertainty.laplace import LastLayerLaplace

Sampler = Literal["softmax", "mc_dropout", "ensemble", "laplace"]
SAMPLERS: tuple[str, ...] = ("softmax", "mc_dropout", "ensemble", "laplace")


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout modules of `model` (subclasses of torch's `_DropoutNd`)."""
    return [module for module in model.modules() if isinstance(module, _DropoutNd)]


def dropout_only_train(model: nn.Module) -> AbstractContextManager[None]:
    """Only the dropout modules in training mode for the block; every flag restored afterwards.

    Dropout modules are the subclasses of `torch.nn.modules.dropout._DropoutNd`: Dropout,
    Dropout1d/2d/3d, AlphaDropout and FeatureAlphaDropout. Every other module, batch norm and
    SyncBatchNorm included, is put in eval mode, so predictions use the running statistics and never
    depend on the rest of the batch. Functional dropout (`F.dropout(x, training=self.training)`)
    follows its own module's `training` flag, which stays False here, so it stays OFF: only
    module dropout is sampled.
    """
    return training_flags(model, lambda module: isinstance(module, _DropoutNd))


def model_device(model: nn.Module, default: torch.device) -> torch.device:
    """The device of the model's first parameter or buffer, or `default` when it has none."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return default


def _probabilities(model: nn.Module, x: Tensor, rows: int, max_batch_elements: int) -> Tensor:
    """Softmax of `model` on x.repeat(rows // len(x), ...) (row i is x[i % len(x)]), in chunks."""
    count = x.shape[0]
    if rows == 0:
        return _softmax(model, x)
    chunk = max(1, max_batch_elements // max(1, math.prod(x.shape[1:])))
    parts = []
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        if start == 0 and stop == count:
            parts.append(_softmax(model, x))
        else:
            # Gathers only this chunk's rows of the repeated batch, never all of it at once.
            index = torch.arange(start, stop, device=x.device) % count
            parts.append(_softmax(model, x.index_select(0, index)))
    return torch.cat(parts)


def _softmax(model: nn.Module, batch: Tensor) -> Tensor:
    logits = model(batch)
    if logits.dim() != 2 or logits.shape[0] != batch.shape[0]:
        raise ModelOutputError(
            f"the model returned shape {tuple(logits.shape)} for {batch.shape[0]} inputs; a "
            "classifier must return logits of shape (batch, classes)"
        )
    return logits.float().softmax(dim=-1)


def predictive_samples(
    model: nn.Module,
    x: Tensor,
    *,
    method: Sampler = "softmax",
    samples: int = 20,
    ensemble: Sequence[nn.Module] = (),
    max_batch_elements: int = 2**24,
    generator_seed: int | None = None,
    laplace: LastLayerLaplace | None = None,
) -> Tensor:
    """Predictive probability samples of shape (T, n, classes), float32, on the model's device.

    `softmax`: T = 1, one pass of `model` in eval mode. `mc_dropout`: T = `samples` passes with
    only the dropout modules sampling (see `dropout_only_train`); the T copies of `x` are stacked
    along the batch axis and run in as few forward passes as `max_batch_elements` (input elements
    per pass) allows. `ensemble`: T = len(`ensemble`), each member in eval mode on `x`; `model`
    itself is not a member unless listed. With `generator_seed`, torch's global RNG is forked and
    seeded for the call (CPU and the model's device), so dropout masks repeat; they still depend
    on the batch's layout, which is why the per-example guarantee is about batch norm: it stays in
    eval mode, so an example's predictive distribution does not depend on the other inputs.
    `laplace`: T = `samples` draws of the last nn.Linear's weights from the fitted last-layer
    posterior `laplace` (see `uncertainty.laplace.fit_laplace`) applied to the features of one
    eval-mode pass; `generator_seed` seeds the draws' own generator.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown uncertainty method {method!r}; use one of {', '.join(SAMPLERS)}")
    if max_batch_elements < 1:
        raise ValueError(f"max_batch_elements must be at least 1, got {max_batch_elements}")
    count = x.shape[0]
    with torch.no_grad():
        if method == "ensemble":
            if not ensemble:
                raise ValueError("method 'ensemble' needs at least one member in `ensemble`")
            device = model_device(model, x.device)
            members = []
            for member in ensemble:
                inputs = x.to(model_device(member, device))
                with eval_mode(member):
                    members.append(_probabilities(member, inputs, count, max_batch_elements))
            return torch.stack([probs.to(device) for probs in members])
        x = x.to(model_device(model, x.device))
        if method == "laplace":
            return _laplace_samples(model, x, samples, laplace, generator_seed, max_batch_elements)
        if method == "softmax":
            with eval_mode(model):
                return _probabilities(model, x, count, max_batch_elements).unsqueeze(0)
        if samples < 1:
            raise ValueError(f"mc_dropout needs samples >= 1, got {samples}")
        if not dropout_modules(model):
            raise ValueError(
                "method 'mc_dropout' needs a model with dropout modules (nn.Dropout, Dropout1d/2d/"
                "3d, AlphaDropout, FeatureAlphaDropout); this model has none, and functional "
                "F.dropout is not switched on. Use method 'softmax' or 'ensemble' instead"
            )
        with dropout_only_train(model), seeded_torch(generator_seed, x.device):
            probs = _probabilities(model, x, samples * count, max_batch_elements)
        return probs.reshape(samples, count, probs.shape[-1])


def _laplace_samples(
    model: nn.Module,
    x: Tensor,
    samples: int,
    laplace: LastLayerLaplace | None,
    seed: int | None,
    max_batch_elements: int,
) -> Tensor:
    """Posterior last-layer samples on the features of `x` (input of the last nn.Linear)."""
    from robustness_checks.uncertainty.features import reading, resolve

    if laplace is None:
        raise ValueError("method 'laplace' needs a fitted posterior: pass laplace=fit_laplace(...)")
    if samples < 1:
        raise ValueError(f"laplace needs samples >= 1, got {samples}")
    tap = resolve(model, None)
    chunk = max(1, max_batch_elements // max(1, math.prod(x.shape[1:])))
    parts = []
    with eval_mode(model), reading(model, tap) as box:
        for start in range(0, x.shape[0], chunk):
            model(x[start : start + chunk])
            parts.append(box["features"])
    generator = None
    if seed is not None:
        generator = torch.Generator(device=laplace.weight.device).manual_seed(seed)
    if not parts:
        parts.append(x.new_zeros(0, laplace.weight.shape[1]))
    features = torch.cat(parts).to(laplace.weight.device)
    probs = laplace.sample_probabilities(features, samples, generator)
    return probs.to(x.device)


def _as_samples(probs: Tensor) -> Tensor:
    if probs.dim() == 2:
        return probs.unsqueeze(0)
    if probs.dim() != 3:
        raise ValueError(
            f"probabilities must have shape (samples, n, classes) or (n, classes), "
            f"got {tuple(probs.shape)}"
        )
    return probs


def _entropy(probs: Tensor) -> Tensor:
    # xlogy gives 0 * log 0 = 0.
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def predictive_entropy(probs: Tensor) -> Tensor:
    """Total uncertainty H(mean_t p_t) in nats, shape (n,); `probs` is (T, n, K) or (n, K)."""
    return _entropy(_as_samples(probs).mean(dim=0))


def expected_entropy(probs: Tensor) -> Tensor:
    """Aleatoric part mean_t H(p_t) in nats, shape (n,)."""
    return _entropy(_as_samples(probs)).mean(dim=0)


def mutual_information(probs: Tensor) -> Tensor:
    """Epistemic part: predictive minus expected entropy, clamped at 0 (rounding), shape (n,)."""
    probs = _as_samples(probs)
    return (predictive_entropy(probs) - expected_entropy(probs)).clamp_min(0.0)


def variation_ratio(probs: Tensor) -> Tensor:
    """1 - (count of the modal predicted class over the T samples) / T, shape (n,).

    Each sample's prediction is its argmax (the lowest class index among equal maxima).
    """
    probs = _as_samples(probs)
    samples, count, classes = probs.shape
    votes = torch.zeros(count, classes, dtype=probs.dtype, device=probs.device)
    votes.scatter_add_(1, probs.argmax(dim=-1).T, torch.ones_like(probs[..., 0]).T)
    return 1.0 - votes.amax(dim=-1) / samples


def confidence(probs: Tensor) -> Tensor:
    """Max over classes of the mean probability, shape (n,); higher means MORE certain."""
    return _as_samples(probs).mean(dim=0).amax(dim=-1)


MEASURES: dict[str, Callable[[Tensor], Tensor]] = {
    "predictive_entropy": predictive_entropy,
    "expected_entropy": expected_entropy,
    "mutual_information": mutual_information,
    "variation_ratio": variation_ratio,
    "confidence": confidence,
}

__all__ = [
    "MEASURES",
    "SAMPLERS",
    "Sampler",
    "confidence",
    "dropout_modules",
    "dropout_only_train",
    "expected_entropy",
    "model_device",
    "mutual_information",
    "predictive_entropy",
    "predictive_samples",
    "variation_ratio",
]
