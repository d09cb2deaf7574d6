"""Pick the torch device a spec asks for: auto prefers cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from robustness_checks.errors import LoadError


def resolve_device(name: str | torch.device | None) -> torch.device:
    """A usable torch.device for `name` (auto, cpu, cuda, cuda:N, mps or None for auto)."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LoadError(
                f"device {name!r} was asked for but CUDA is not available here; "
                "use device: auto (or --robustness-device cpu)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LoadError(
                f"device {name!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LoadError(f"device {name!r} was asked for but MPS is not available here")
    return device
