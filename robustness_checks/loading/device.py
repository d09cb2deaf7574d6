"""Pick the torch device a spec asks for: auto prefers cuda, then mps, then cpu."""

from __future__ import annotations

import warnings

import torch

from robustness_checks.errors import LoadError, RobustnessWarning


def resolve_device(name: str | torch.device | None, *, field: str = "device") -> torch.device:
    """A usable torch.device for `name` (auto, cpu, cuda, cuda:N, mps or None for auto).

    With auto, CUDA that reports itself available but cannot be initialised falls back to the
    next choice with a `RobustnessWarning`. `field` names where `name` came from in messages.
    """
    device, note = choose_device(name, field=field)
    if note is not None:
        warnings.warn(note, RobustnessWarning, stacklevel=2)
    return device


def choose_device(
    name: str | torch.device | None, *, field: str = "device"
) -> tuple[torch.device, str | None]:
    """`resolve_device` without the warning: the device, and why auto fell back (or None)."""
    if isinstance(name, torch.device):
        return name, None
    if name is None or name == "auto":
        note = None
        if torch.cuda.is_available():
            problem = cuda_problem(None)
            if problem is None:
                return torch.device("cuda"), None
            fallback = "mps" if torch.backends.mps.is_available() else "cpu"
            note = (
                f"{field} 'auto': CUDA reports itself available but cannot be used ({problem}); "
                f"running on {fallback} instead. Fix the CUDA set-up (driver, "
                f"CUDA_VISIBLE_DEVICES) to use the GPU, or ask for {fallback} to silence this "
                "warning"
            )
        if torch.backends.mps.is_available():
            return torch.device("mps"), note
        return torch.device("cpu"), note
    device = torch.device(name)
    asked = f"{field} {name!r}"
    if field.startswith("--"):
        auto = f"use {field} auto (or cpu)"
    else:
        auto = (
            f"set {field}: auto (or cpu) in the spec, or override it with --robustness-device cpu"
        )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LoadError(
                f"{asked} was asked for but CUDA is not available here; {auto}. With auto, a "
                "check runs on the GPU where there is one and on the CPU elsewhere"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise LoadError(
                f"{asked} does not exist: this machine has {count} CUDA device(s)"
                + (f", cuda:0 to cuda:{count - 1}" if count else "")
                + f"; name one of those, or {auto}"
            )
        problem = cuda_problem(device.index)
        if problem is not None:
            raise LoadError(
                f"{asked} cannot be used: {problem}. Fix the CUDA set-up (driver, "
                f"CUDA_VISIBLE_DEVICES), or {auto}; auto falls back to the CPU with a warning"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LoadError(f"{asked} was asked for but MPS is not available here; {auto}")
    return device, None


def cuda_problem(index: int | None) -> str | None:
    """Why CUDA device `index` (None: the current one) cannot be used, or None when it can:
    initialises CUDA and allocates one element on it."""
    try:
        torch.cuda.init()
        torch.empty(1, device="cuda" if index is None else f"cuda:{index}")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None
