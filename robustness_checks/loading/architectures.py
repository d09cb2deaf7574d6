"""Networks named by torchvision or timm, built without pretrained weights: weights are local."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from torch import nn

from robustness_checks.errors import LoadError

# timm.create_model options that fetch or read pretrained weights or configs: `weights:` instead.
TIMM_REFUSED = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path")
TIMM_REFUSED_ALWAYS = ("cache_dir",)


def close_names(name: str, known: Iterable[str]) -> str:
    """'; did you mean 'a', 'b'?' for the known names closest to `name`, or ''."""
    choices = list(known)
    found = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not found:
        lowered = name.lower()
        found = [choice for choice in choices if lowered and lowered in choice.lower()][:3]
    return f"; did you mean {', '.join(map(repr, found))}?" if found else ""


def torchvision_name_problem(name: str) -> str | None:
    """Why torchvision cannot build `name`, or None."""
    import torchvision

    known = torchvision.models.list_models()
    if name in known:
        return None
    return f"torchvision has no model named {name!r}{close_names(name, known)}"


def torchvision_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """torchvision's `name` built with weights=None (and weights_backbone=None)."""
    import torchvision

    problem = torchvision_name_problem(name)
    if problem is not None:
        raise LoadError(problem)
    kwargs = dict(kwargs)
    for key in ("weights", "weights_backbone"):
        if kwargs.pop(key, None) is not None:
            raise LoadError(
                f"torchvision models never download weights here: leave kwargs.{key} out and "
                "give a local state_dict file in `weights:`"
            )
    builder = torchvision.models.get_model_builder(name)
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None  # its default would download ImageNet weights
    try:
        return builder(weights=None, **kwargs)
    except (TypeError, ValueError) as error:
        raise LoadError(f"torchvision model {name!r} rejects kwargs {kwargs}: {error}") from error


def import_timm() -> ModuleType:
    """The timm package, or a LoadError saying how to install it."""
    try:
        import timm
    except ImportError as error:
        raise LoadError(
            "model.timm names a timm architecture, but timm is not installed: pip install timm"
        ) from error
    return timm


def timm_name_problem(name: str) -> str | None:
    """Why `name` is not a timm architecture built from timm's own registry, or None. A name may
    carry a pretrained tag ('resnet18.a1_in1k': its default configuration, not its weights)."""
    timm = import_timm()
    if ":" in name or "/" in name:
        return (
            f"timm model {name!r} names a Hugging Face Hub repository or a folder, whose "
            "configuration and weights would be fetched; give the architecture name (such as "
            "'resnet18') and a local weights file in `weights:`"
        )
    architecture = name.split(".", 1)[0]
    if timm.is_model(architecture):
        return None
    return f"timm has no model named {name!r}{close_names(architecture, timm.list_models())}"


def timm_kwargs_problems(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for each kwarg that would make timm fetch or read pretrained weights."""
    problems = []
    for key in (*TIMM_REFUSED, *TIMM_REFUSED_ALWAYS):
        value = kwargs.get(key)
        if key not in kwargs or value is None or (key in TIMM_REFUSED and value is False):
            continue
        problems.append(
            (
                key,
                f"timm models never download or read pretrained weights here: leave "
                f"kwargs.{key} out and give a local weights file (.pt or .safetensors) in "
                "`weights:`",
            )
        )
    return problems


def timm_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """timm's architecture `name` built by timm.create_model with pretrained=False."""
    timm = import_timm()
    problem = timm_name_problem(name)
    if problem is not None:
        raise LoadError(problem)
    refused = timm_kwargs_problems(kwargs)
    if refused:
        raise LoadError(refused[0][1])
    options = {key: value for key, value in kwargs.items() if key != "pretrained"}
    try:
        return timm.create_model(name, pretrained=False, **options)
    except (TypeError, ValueError, RuntimeError, AssertionError) as error:
        raise LoadError(f"timm model {name!r} rejects kwargs {options}: {error}") from error
