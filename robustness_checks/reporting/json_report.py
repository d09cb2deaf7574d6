"""The results JSON file (schema_version 1) of DESIGN.md."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

from robustness_checks.reporting.atomic import write_text_atomic

SCHEMA_VERSION = 1


def environment(devices: list[str]) -> dict[str, Any]:
    """Versions and device(s) of this run."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__.split("+")[0],
        "device": ", ".join(devices) if devices else "cpu",
    }


def results_document(
    results: list[dict[str, Any]], devices: list[str], specs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole results document for these result records (`specs`: hash and seed per spec)."""
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": created.isoformat().replace("+00:00", "Z"),
        "environment": environment(devices),
        "specs": specs or {},
        "results": results,
    }


def write_results_json(path: str | Path, document: dict[str, Any]) -> Path:
    """Write a results document atomically."""
    return write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
