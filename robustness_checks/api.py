"""The Python API: every check type as a function of a model and data, returning a `CheckResult`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustness_checks.context import CheckContext
from robustness_checks.examples import as_examples
from robustness_checks.loading.device import resolve_device
from robustness_checks.registry import check_type
from robustness_checks.results import CheckResult
from robustness_checks.runner import execute


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
    **params: Any,
) -> CheckResult:
    """Run a check of `type` on `model` (raw inputs in, logits out) and `data`.

    `data` is an (x, y) pair, a torch Dataset or a DataLoader; `params` are the check's YAML
    fields. The model is moved to `device` (auto by default) and put in eval mode.
    """
    entry = check_type(type)
    check_name = name or type
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
    )
    return execute(context, spec)


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
