"""Weights in safetensors format: read without pickle, and checked cheaply from their header."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from robustness_checks.errors import LoadError

SUFFIX = ".safetensors"
MAX_HEADER = 100_000_000  # bytes; the safetensors library refuses longer headers too
SAVE = "safetensors.torch.save_file(model.state_dict(), path)"


def is_safetensors(path: Path) -> bool:
    """Whether `path` names a safetensors file (by its suffix, as Hugging Face names them)."""
    return path.suffix.lower() == SUFFIX


def header_problem(path: Path) -> str | None:
    """Why the file at `path` is not a complete safetensors file, or None. Reads the 8-byte header
    length and the JSON header only: the tensors' byte ranges must end where the file ends."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        start = stream.read(8)
        if len(start) < 8:
            return "shorter than the 8 bytes that give a safetensors header's length"
        length = int.from_bytes(start, "little")
        if length > min(MAX_HEADER, size - 8):
            return f"its first 8 bytes give no header length that fits in the file{_looks(start)}"
        text = stream.read(length)
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(value, int) for value in offsets)
        ):
            return f"its header entry {name!r} has no data_offsets [begin, end]"
        end = max(end, offsets[1])
    expected = 8 + length + end
    if size != expected:
        return f"its header describes {expected:,} bytes"
    return None


def _looks(start: bytes) -> str:
    """What a file that is not safetensors may be, from its first bytes."""
    if start.startswith(b"PK\x03\x04") or start[:1] == b"\x80":
        return "; its bytes begin like a torch.save file, which should not end in .safetensors"
    return ""


def broken_message(path: Path, reason: str) -> str:
    """Why a safetensors weights file is unusable, and what to do."""
    return (
        f"weights file {path} is truncated or not a safetensors file "
        f"({path.stat().st_size:,} bytes; {reason}). Save it again with {SAVE}, or copy or "
        "download it again in full"
    )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU (no pickle is involved)."""
    if not path.is_file():
        raise LoadError(f"weights file {path} does not exist")
    problem = header_problem(path)
    if problem is not None:
        raise LoadError(broken_message(path, problem))
    try:
        from safetensors.torch import load_file
    except ImportError as error:
        raise LoadError(
            f"weights file {path} is in safetensors format, but the safetensors package is not "
            "installed: pip install safetensors"
        ) from error
    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # SafetensorError for malformed headers or unknown dtypes
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
        raise LoadError(broken_message(path, f"safetensors: {reason}")) from error
