"""Fingerprints of what a result was measured on: model weights, data content and settings."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        # Streamed inputs (data larger than memory) are hashed a batch at a time, to the same
        # digest as the stacked tensor.
        parts = [tensor] if isinstance(tensor, torch.Tensor) else tensor.batches(256)
        for part in parts:
            part = part.detach().cpu().contiguous()
            digest.update(part.reshape(-1).view(torch.uint8).numpy().tobytes())
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


# Prints of file-backed models and data, once per process: by key, in which every file is its
# (real path, size, modification time), so the same file reached by another path or from
# another spec is hashed once, and a file rewritten since is hashed again.
_BY_FILES: dict[str, str] = {}
# A file modified less than this long before it was hashed may be rewritten again within one
# tick of the file system's clock, keeping its size and time: its print is not kept (git's
# "racily clean" rule).
RACY_NS = 2_000_000_000


def file_identity(path: Path) -> dict[str, Any] | None:
    """A regular file's real path, size and modification time; None when it cannot be read."""
    try:
        real = os.path.realpath(path)
        found = os.stat(real)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return {"file": real, "size": found.st_size, "mtime_ns": found.st_mtime_ns}


def print_by_files(key: Any, compute: Callable[[], str]) -> str:
    """`compute()` once per process for each `key` (from `model_files_key` or `data_files_key`);
    computed every time for key None (a source that is not a file's content alone) and while
    one of its files was modified in the last RACY_NS."""
    if key is None:
        return compute()
    text = json.dumps(key, sort_keys=True)
    if text in _BY_FILES:
        return _BY_FILES[text]
    found = compute()
    newest = max((part["mtime_ns"] for part in _identities(key)), default=0)
    if time.time_ns() - newest > RACY_NS:
        _BY_FILES[text] = found
    return found


def _identities(key: Any) -> list[dict[str, Any]]:
    """The file identities (`file_identity` dicts) inside a key."""
    if isinstance(key, dict):
        if "mtime_ns" in key:
            return [key]
        return [found for item in key.values() for found in _identities(item)]
    if isinstance(key, list):
        return [found for item in key for found in _identities(item)]
    return []


def data_files_key(spec: Any, base_dir: Path, *, labels: bool) -> Any | None:
    """What a data source's examples are made of when it is a tensors file: the file, its other
    fields (limit, say; batching aside) and whether labels were required; None for other
    sources (a factory, a folder of images: their content is not one file's)."""
    if spec.tensors is None:
        return None
    identity = file_identity(base_dir / spec.tensors)
    fields = spec.model_dump(mode="json", exclude={"tensors", "batch_size", "stream"})
    return None if identity is None else ["data", identity, fields, labels]


def model_files_key(spec: Any, base_dir: Path) -> Any | None:
    """What a model (and its ensemble) is made of when each network's weights come from a file
    (`weights` or `torchscript`): its fields with each file, a factory's .py file included, as
    the file itself; None when a network keeps the weights its factory made."""
    described = spec.model_dump(mode="json")
    networks = [described, *(described.pop("ensemble", None) or [])]
    for network in networks:
        if network.get("weights") is None and network.get("torchscript") is None:
            return None
        for field in ("weights", "torchscript"):
            if network.get(field) is not None:
                network[field] = file_identity(base_dir / network[field])
                if network[field] is None:
                    return None
        module, _, function = str(network.get("factory") or "").rpartition(":")
        if module.endswith(".py") or "/" in module or "\\" in module:
            network["factory"] = [file_identity(base_dir / module), function]
            if network["factory"][0] is None:
                return None
    return ["model", networks]
