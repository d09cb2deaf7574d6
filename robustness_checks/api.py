"""The Python API: every check type as a function of a model and data, returning a `CheckResult`.

The functions are generated from the CheckType records, so their keywords and defaults are the
YAML fields' (api.pyi spells them out for IDEs; a test keeps it in sync).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.registry import CHECK_TYPES, check_type
from robustness_checks.checks.runner import emit_warnings, execute
from robustness_checks.checks.signatures import (
    RUN_OPTIONS,
    check_docstring,
    check_signature,
    flattened_fields,
    parameter_fields,
)
from robustness_checks.examples import as_examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.watch import Watch
from robustness_checks.fingerprints import Fingerprints, fingerprint_examples, fingerprint_model
from robustness_checks.loading.device import resolve_device
from robustness_checks.results import CheckResult
from robustness_checks.settings import (
    SettingsLayer,
    in_session,
    measured_settings,
    resolve_call,
    settings_fingerprint,
)
from robustness_checks.spec.parse import validate_check

DEFAULT_BATCH_SIZE = 256


def run_check(
    type: str,
    model: nn.Module,
    data: Any,
    *,
    name: str | None = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    confidence: float | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int | None = None,
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
    `batch_size` (default 256) batches the data; a check with a `batch_size` field of its own
    (noise) receives it too when it is given.
    `seed` (default 0), `confidence` (default 0.95), `decision` (default point) and `timeout`
    are run settings: inside a pytest session the command line's --robustness-seed,
    --robustness-decision, --robustness-timeout and --robustness-device override them, and
    the ini option robustness_decision is the default where the call gives none.
    Bad arguments raise a SpecError (a ValueError) with the messages YAML users get.
    """
    entry = check_type(type)
    check_name = name or type
    if batch_size is not None and "batch_size" in parameter_fields(entry):
        params.setdefault("batch_size", batch_size)
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    params = _gather_flattened(entry, params)
    extra_data = {
        key: as_examples(params.pop(key), batch_size)
        for key in [k for k in entry.data_fields if params.get(k) is not None]
        if not isinstance(params[key], dict)
    }
    spec = validate_check(
        {"name": check_name, "type": type, "confidence": confidence, **params}
        if confidence is not None
        else {"name": check_name, "type": type, **params}
    )
    settings = resolve_call(
        SettingsLayer(
            seed=seed,
            decision=spec.decision,
            confidence=spec.confidence,
            timeout=spec.timeout,
            device=None if device is None else str(device),
        )
    )
    examples = as_examples(data, batch_size)
    context = CheckContext.create(
        model,
        examples,
        resolve_device(settings.device),
        check_name,
        seed=settings.seed,
        confidence=settings.confidence,
        bounds=bounds,
        ensemble=ensemble,
        extra_data=extra_data,
        precision=precision,
        channels_last=channels_last,
    )
    context.decision = settings.decision
    if settings.timeout is not None:
        context.watch(Watch(check_name, settings.timeout))
    result = execute(context, spec)
    result.settings = measured_settings(spec, settings, bounds=bounds, precision=precision)
    if in_session():
        # Inside pytest its result may be saved as or compared with a baseline: what it was
        # measured on (hashing weights and data is not worth it for a plain library call).
        result.fingerprints = Fingerprints(
            model=fingerprint_model(model, *(ensemble or [])),
            data=fingerprint_examples(examples, extra_data),
            check=settings_fingerprint(result.settings),
        )
    emit_warnings(result)
    return result


def _gather_flattened(entry: CheckType, params: dict[str, Any]) -> dict[str, Any]:
    """Keywords that belong to the `flattened` block (eps=0.1 -> attack={'eps': 0.1})."""
    if entry.flattened is None:
        return params
    inner = set(flattened_fields(entry)) - set(parameter_fields(entry))
    given = {key: params.pop(key) for key in [k for k in params if k in inner]}
    block = params.get(entry.flattened)
    if given or block is None:
        block = {**(block or {}), **given} if not hasattr(block, "model_dump") else block
        params[entry.flattened] = block
    return params


def check_function(entry: CheckType) -> Callable[..., CheckResult]:
    """The Python function of a check type, with its fields as keywords (see check_signature)."""
    signature = check_signature(entry)

    def function(*args: Any, **kwargs: Any) -> CheckResult:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{entry.name}(): {error}") from None
        given = dict(bound.arguments)
        options = {key: given.pop(key) for key in list(given) if key in RUN_OPTIONS}
        model, data = given.pop("model"), given.pop("data")
        return run_check(entry.name, model, data, **options, **given)

    function.__name__ = function.__qualname__ = entry.name
    function.__module__ = __name__
    function.__doc__ = check_docstring(entry)
    function.__signature__ = signature  # type: ignore[attr-defined]
    return function


def __getattr__(name: str) -> Callable[..., CheckResult]:
    """A check function for any registered type, third-party ones included."""
    if name in CHECK_TYPES:
        return check_function(CHECK_TYPES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


calibration = check_function(CHECK_TYPES["calibration"])
adversarial = check_function(CHECK_TYPES["adversarial"])
entropy_trend = check_function(CHECK_TYPES["entropy_trend"])
selective = check_function(CHECK_TYPES["selective"])
ood = check_function(CHECK_TYPES["ood"])
failure_prediction = check_function(CHECK_TYPES["failure_prediction"])
noise = check_function(CHECK_TYPES["noise"])
fuzz = check_function(CHECK_TYPES["fuzz"])
