"""The Python API: every check type as a function of a model and data, returning a `CheckResult`."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from robustness_checks.checks.registry import check_type
from robustness_checks.checks.runner import emit_warnings, execute
from robustness_checks.examples import as_examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.failure_probability.estimate import DEFAULT_ESTIMATOR
from robustness_checks.loading.device import resolve_device
from robustness_checks.results import CheckResult


def run_check(
    type: str,
    model: nn.Module,
    data: Any,
    *,
    name: str | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
    ensemble: list[nn.Module] | None = None,
    precision: Literal["fp32", "bf16", "fp16"] = "fp32",
    channels_last: bool | Literal["auto"] = "auto",
    **params: Any,
) -> CheckResult:
    """Run a check of `type` on `model` (raw inputs in, logits out) and `data`.

    `data` is an (x, y) pair, a torch Dataset or a DataLoader; `params` are the check's YAML
    fields, except that a data field such as `ood_data` takes data in any of those forms (or a
    tensor of inputs alone). The model is moved to `device` (auto by default) and put in eval mode.
    `precision` and `channels_last` are the spec's top-level fields of the same names.
    """
    entry = check_type(type)
    check_name = name or type
    extra_data = {
        key: as_examples(params.pop(key), batch_size)
        for key in [k for k, v in params.items() if k.endswith("_data") and not isinstance(v, dict)]
    }
    spec = entry.params.model_validate({"name": check_name, "type": type, **params})
    context = CheckContext.create(
        model,
        as_examples(data, batch_size),
        resolve_device(device),
        check_name,
        seed=seed,
        confidence=confidence,
        bounds=bounds,
        ensemble=ensemble,
        extra_data=extra_data,
        precision=precision,
        channels_last=channels_last,
    )
    result = execute(context, spec)
    emit_warnings(result)
    return result


def calibration(
    model: nn.Module,
    data: Any,
    *,
    metric: str = "ece",
    bins: int = 15,
    max: float | None = None,
    bootstrap: int = 1000,
    **options: Any,
) -> CheckResult:
    """Calibration of `model` on `data`: ece, ace, mce, classwise_ece, brier or nll.

    >>> result = calibration(model, (x, y), metric="ece", max=0.05)  # doctest: +SKIP
    >>> assert result, result.message                                  # doctest: +SKIP
    """
    return run_check(
        "calibration",
        model,
        data,
        metric=metric,
        bins=bins,
        max=max,
        bootstrap=bootstrap,
        **options,
    )


def adversarial(
    model: nn.Module,
    data: Any,
    *,
    eps: float | list[float],
    method: str = "pgd",
    norm: str | int = "inf",
    max_drop: float | list[float] | None = None,
    min_accuracy: float | list[float] | None = None,
    failing_examples: int = 8,
    attack: dict[str, Any] | None = None,
    **options: Any,
) -> CheckResult:
    """Accuracy of `model` under an attack at every eps (one call, many eps), with bounds.

    `attack` takes the other fields of the YAML attack block (steps, step_size, restarts,
    random_start, early_stop, targeted).

    Example: ``adversarial(model, (x, y), method="pgd", eps=[0.05, 0.1], max_drop=0.3)``.
    """
    block = {**(attack or {}), "method": method, "norm": str(norm), "eps": eps}
    return run_check(
        "adversarial",
        model,
        data,
        attack=block,
        max_drop=max_drop,
        min_accuracy=min_accuracy,
        failing_examples=failing_examples,
        **options,
    )


def entropy_trend(
    model: nn.Module,
    data: Any,
    *,
    eps: list[float],
    attack: dict[str, Any] | None = None,
    uncertainty: dict[str, Any] | None = None,
    metric: str = "predictive_entropy",
    expect: str = "increasing",
    tolerance: float = 0.0,
    **options: Any,
) -> CheckResult:
    """Whether the uncertainty `metric` rises (or falls) with the perturbation size `eps`."""
    return run_check(
        "entropy_trend",
        model,
        data,
        eps=eps,
        attack=attack or {"method": "fgsm"},
        uncertainty=uncertainty or {},
        metric=metric,
        expect=expect,
        tolerance=tolerance,
        **options,
    )


def selective(
    model: nn.Module,
    data: Any,
    *,
    score: str = "confidence",
    coverage: float | None = None,
    min_accuracy: float | None = None,
    max_aurc: float | None = None,
    uncertainty: dict[str, Any] | None = None,
    **options: Any,
) -> CheckResult:
    """Accuracy at `coverage`, or AURC, when abstaining on the inputs with the highest `score`."""
    return run_check(
        "selective",
        model,
        data,
        score=score,
        coverage=coverage,
        min_accuracy=min_accuracy,
        max_aurc=max_aurc,
        uncertainty=uncertainty or {},
        **options,
    )


def ood(
    model: nn.Module,
    data: Any,
    ood_data: Any,
    *,
    score: str = "msp",
    metric: str = "auroc",
    min: float | None = None,
    max: float | None = None,
    uncertainty: dict[str, Any] | None = None,
    **options: Any,
) -> CheckResult:
    """How well `score` separates `ood_data` (positives) from `data`: auroc, aupr or fpr95."""
    return run_check(
        "ood",
        model,
        data,
        ood_data=ood_data,
        score=score,
        metric=metric,
        min=min,
        max=max,
        uncertainty=uncertainty or {},
        **options,
    )


def failure_prediction(
    model: nn.Module,
    data: Any,
    *,
    score: str = "confidence",
    metric: str = "aupr_error",
    min: float | None = None,
    uncertainty: dict[str, Any] | None = None,
    **options: Any,
) -> CheckResult:
    """How well `score` ranks the model's errors above its correct predictions."""
    return run_check(
        "failure_prediction",
        model,
        data,
        score=score,
        metric=metric,
        min=min,
        uncertainty=uncertainty or {},
        **options,
    )


def noise(
    model: nn.Module,
    data: Any,
    *,
    sigma: float,
    estimator: str = DEFAULT_ESTIMATOR,
    relative_error: float = 0.1,
    inputs: int | None = None,
    indices: list[int] | None = None,
    max_evaluations: int = 20000,
    max_probability: float | None = None,
    clip: bool = False,
    **options: Any,
) -> CheckResult:
    """P(model misclassifies x + N(0, sigma^2 I)) per selected input, at most `max_probability`."""
    return run_check(
        "noise",
        model,
        data,
        sigma=sigma,
        estimator=estimator,
        relative_error=relative_error,
        inputs=inputs,
        indices=indices,
        max_evaluations=max_evaluations,
        max_probability=max_probability,
        clip=clip,
        **options,
    )


def fuzz(
    model: nn.Module,
    data: Any,
    *,
    perturbations: list[dict[str, Any]],
    property: str | None = None,
    max_confidence_drop: float | None = None,
    inputs: int | None = None,
    indices: list[int] | None = None,
    max_examples: int = 200,
    database: str | Literal[False] | None = None,
    **options: Any,
) -> CheckResult:
    """Fuzz `model` on `data` with hypothesis: the property must hold for every perturbation.

    >>> result = fuzz(model, (x, y), perturbations=[{"kind": "brightness", "max": 0.3}],
    ...               property="label_invariant", inputs=20)  # doctest: +SKIP
    >>> assert result, result.message                          # doctest: +SKIP
    """
    return run_check(
        "fuzz",
        model,
        data,
        perturbations=perturbations,
        property=property,
        max_confidence_drop=max_confidence_drop,
        inputs=inputs,
        indices=indices,
        max_examples=max_examples,
        database=database,
        **options,
    )
