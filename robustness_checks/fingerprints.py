"""Fingerprints of what a result was measured on: model weights, data content and settings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fingerprints:
    """sha256 of the model's weights, of the data a check read, and of its settings (`check`)."""

    model: str
    data: str
    check: str

    def as_json(self) -> dict[str, str]:
        return {"model": self.model, "data": self.data, "check": self.check}

    @classmethod
    def from_json(cls, found: Any) -> Fingerprints | None:
        """The fingerprints of a results record, or None when any of the three is missing."""
        if not isinstance(found, dict):
            return None
        values = [found.get(key) for key in ("model", "data", "check")]
        if not all(isinstance(value, str) and value for value in values):
            return None
        return cls(*values)


def fingerprint_tensors(*tensors: Any) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes, in order."""
    import torch

    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint_model(*models: Any) -> str:
    """sha256 of the models' state_dicts (names, dtypes, shapes, values), in order."""
    digest = hashlib.sha256()
    for model in models:
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(fingerprint_tensors(tensor).encode())
    return digest.hexdigest()


def fingerprint_examples(examples: Any, extra: dict[str, Any] | None = None) -> str:
    """sha256 of a check's data: its examples and, by field name, its own data sources (such as
    ood_data), by content, so moving the files does not change it."""
    return combined_data_print(
        fingerprint_tensors(examples.x, examples.y),
        {name: fingerprint_tensors(found.x, found.y) for name, found in (extra or {}).items()},
    )


def combined_data_print(main: str, extra: dict[str, str]) -> str:
    """The data fingerprint from the examples' print and each extra source's print by name."""
    if not extra:
        return main
    parts = [main, *(f"{name}:{value}" for name, value in sorted(extra.items()))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
