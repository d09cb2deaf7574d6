"""Feature-based OOD scores in a check: read features, fit on `fit_data` once, score examples."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from robustness_checks.errors import RobustnessError
from robustness_checks.examples import Examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.uncertainty import detectors
from robustness_checks.uncertainty.features import Tap, linear_head, reading, resolve

DEFAULT_PERCENTILE = {"react": 90.0, "ash": 65.0}
# Fitted statistics per fit data set (by identity; the spec's runtime keeps it alive), then by
# network, feature tap, precision and detector; an entry lives as long as its fit data.
_FITTED: dict[int, tuple[weakref.ref, dict[tuple, tuple[weakref.ref, Any]]]] = {}


@dataclass(frozen=True)
class FeatureSettings:
    """What a feature score needs besides the model and the data."""

    score: str
    features: str | None = None
    k: int = 50
    percentile: float | None = None
    vim_dim: int | None = None
    temperature: float | None = None


@dataclass
class FeatureScores:
    """Scores (float64, CPU), predicted classes and what the report says about the fit."""

    scores: Tensor
    predictions: Tensor
    details: dict[str, Any] = field(default_factory=dict)


def collect(context: CheckContext, tap: Tap, examples: Examples) -> tuple[Tensor, Tensor]:
    """(logits, features) of every example from one counted forward pass each (shared with
    the spec's other checks that read the same layer of a deterministic model)."""
    out = context.clean_pass(
        ("features", tap.label), examples, lambda: _read(context, tap, examples)
    )
    return out["logits"], out["features"]


def _read(context: CheckContext, tap: Tap, examples: Examples) -> dict[str, Tensor]:
    with reading(context.model, tap) as box:

        @torch.inference_mode()
        def work(_: Tensor, x: Tensor, __: Tensor) -> dict[str, Any]:
            box.clear()
            logits = context.model(x).float()
            if "features" not in box:
                raise RobustnessError(
                    f"features: {tap.label} was not called in the model's forward pass; name "
                    "a module the forward pass uses"
                )
            return {"logits": logits, "features": box["features"]}

        out = context.map_examples(work, examples)
    return {"logits": out["logits"], "features": out["features"]}


def _cached(
    context: CheckContext, fit: Examples, tap: Tap, key: tuple, make: Callable[[], Any]
) -> Any:
    """`make()` once per (fit data, network, feature tap, precision, key)."""
    network = tap.network
    entries = _entries(fit)
    precision = getattr(context.model, "autocast_dtype", None)
    full = (id(network), tap.path, tap.side, str(precision), *key)
    hit = entries.get(full)
    if hit is not None and hit[0]() is network:
        return hit[1]
    value = make()
    entries[full] = (weakref.ref(network), value)
    return value


def _entries(fit: Examples) -> dict[tuple, tuple[weakref.ref, Any]]:
    """The cache of one fit data set, dropped when the data set is."""
    key = id(fit)
    found = _FITTED.get(key)
    if found is None or found[0]() is not fit:
        found = (weakref.ref(fit, lambda _: _FITTED.pop(key, None)), {})
        _FITTED[key] = found
    return found[1]


def _fit_features(context: CheckContext, tap: Tap, fit: Examples) -> tuple[Tensor, Tensor, bool]:
    """(features on the device, labels, whether they came from the cache) of the fit data."""
    fresh = []

    def make() -> Tensor:
        fresh.append(True)
        return collect(context, tap, fit)[1].to(context.device)

    features = _cached(context, fit, tap, ("features",), make)
    return features, fit.y.to(context.device), not fresh


def _head(context: CheckContext, tap: Tap, settings: FeatureSettings, size: int) -> Any:
    weight, bias = linear_head(tap)
    if weight.shape[1] != size:
        raise RobustnessError(
            f"{settings.score} maps features through the last linear layer "
            f"({weight.shape[1]} inputs), but the features ({tap.label}) have {size} values; "
            "leave `features` out (the input of the last linear layer) or name a layer that "
            "feeds it"
        )
    return weight.to(context.device), bias.to(context.device)


def _fit(
    context: CheckContext, tap: Tap, settings: FeatureSettings, head: Any
) -> tuple[Any, dict[str, Any]]:
    """The detector's fitted statistics and what to report about them."""
    fit = context.extra_data.get("fit_data")
    if fit is None:
        raise RobustnessError(
            f"the {settings.score} score needs fit_data: in-distribution examples (usually a "
            "sample of the training set, with labels) to fit its statistics on"
        )
    z, y, cached = _fit_features(context, tap, fit)
    info = {"fit_examples": len(fit), "fit_cached": cached}
    score = settings.score
    if score in ("mahalanobis", "relative_mahalanobis"):
        if bool((y < 0).any()):
            raise RobustnessError(
                f"the {score} score needs labelled fit_data (class-conditional means): "
                "give y with the inputs"
            )
        model = _cached(context, fit, tap, ("gaussians",), lambda: detectors.fit_gaussians(z, y))
        info["fit_classes"] = int(model.classes.numel())
        if score == "mahalanobis":
            return model, info
        background = _cached(
            context, fit, tap, ("background",), lambda: detectors.fit_background(z)
        )
        return (model, background), info
    if score == "knn":
        if not 1 <= settings.k <= len(fit):
            raise RobustnessError(
                f"knn needs k <= {len(fit)} (the fit_data size), got k = {settings.k}"
            )
        return _cached(context, fit, tap, ("bank",), lambda: detectors.normalised(z)), info
    if score == "vim":
        weight, bias = head

        def make_vim() -> detectors.VirtualLogit:
            try:
                return detectors.fit_vim(z, weight, bias, settings.vim_dim)
            except ValueError as error:
                raise RobustnessError(str(error)) from None

        model = _cached(context, fit, tap, ("vim", settings.vim_dim), make_vim)
        info["vim_dim"] = z.shape[1] - model.residual.shape[1]
        return model, info
    percentile = _percentile(settings)
    threshold = _cached(
        context, fit, tap, ("react", percentile), lambda: detectors.react_threshold(z, percentile)
    )
    info["threshold"] = threshold
    return threshold, info


def _percentile(settings: FeatureSettings) -> float:
    if settings.percentile is not None:
        return settings.percentile
    return DEFAULT_PERCENTILE[settings.score]


def feature_scores(
    context: CheckContext, settings: FeatureSettings, sets: dict[str, Examples]
) -> dict[str, FeatureScores]:
    """Scores of each named example set with the fitted detector (fitted once per spec)."""
    tap = resolve(context.model, settings.features)
    read = {name: collect(context, tap, examples) for name, examples in sets.items()}
    size = next(iter(read.values()))[1].shape[1]
    head = _head(context, tap, settings, size) if settings.score in detectors.HEAD_SCORES else None
    fitted, info = (None, {})
    if settings.score in detectors.FIT_SCORES:
        fitted, info = _fit(context, tap, settings, head)
    classes = next(iter(read.values()))[0].shape[1]
    if info.get("fit_classes", classes) < classes:
        context.warnings.append(
            f"fit_data has examples of {info['fit_classes']} of the model's {classes} classes; "
            f"{settings.score} uses the class means of those present"
        )
    info = {"features": tap.label, "feature_size": size, **info}
    temperature = settings.temperature or 1.0
    out = {}
    for name, (logits, features) in read.items():
        z = features.to(context.device)
        values = _score(settings, fitted, head, z, temperature)
        if not bool(torch.isfinite(values).all()):
            raise RobustnessError(
                f"the {settings.score} score is NaN or infinite for some inputs; check that the "
                "features and logits are finite"
            )
        out[name] = FeatureScores(values.double().cpu(), logits.argmax(dim=1), dict(info))
    return out


def _score(
    settings: FeatureSettings, fitted: Any, head: Any, z: Tensor, temperature: float
) -> Tensor:
    score = settings.score
    if score == "mahalanobis":
        return detectors.mahalanobis_score(fitted, z)
    if score == "relative_mahalanobis":
        return detectors.relative_mahalanobis_score(*fitted, z)
    if score == "knn":
        return detectors.knn_score(fitted, z, settings.k)
    weight, bias = head
    if score == "vim":
        return detectors.vim_score(fitted, z, weight, bias)
    if score == "react":
        return detectors.react_score(z, weight, bias, fitted, temperature)
    return detectors.ash_score(z, weight, bias, _percentile(settings), temperature)
