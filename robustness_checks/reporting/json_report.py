"""The results JSON file (schema_version 1) of DESIGN.md."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from robustness_checks.reporting.atomic import write_text_atomic

SCHEMA_VERSION = 1
PACKED_LIST = 16  # lists of numbers longer than this are written on one line
_MARK = "@@robustness-packed-list@@"


def environment(devices: list[str]) -> dict[str, Any]:
    """Versions and device(s) of this run, and the git commit when run inside a repository."""
    import torch

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__.split("+")[0],
        "device": ", ".join(devices) if devices else "cpu",
        "robustness_checks": _version("robustness-checks") or _own_version(),
        "torchvision": _version("torchvision"),  # from its metadata: importing it takes seconds
    }
    found.update(git_state())
    return found


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _own_version() -> str:
    from robustness_checks import __version__

    return __version__


def git_state(folder: str | Path | None = None) -> dict[str, Any]:
    """{'git': commit, 'git_dirty': bool} of the repository holding `folder` (default: the
    working directory); {} outside a repository or without git. Local commands only."""
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take the index lock of a repository that
    # other processes may be using.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git": commit, "git_dirty": None if status is None else bool(status)}


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
    return write_text_atomic(path, dumps_results(document) + "\n")


def dumps_results(document: dict[str, Any]) -> str:
    """The document as indented JSON, with long lists of numbers (pixels, saliency, curves) on
    one line each: at one number a line they would make a report with pictures several times
    larger."""
    rows: list[str] = []

    def lift(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: lift(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            if len(value) > PACKED_LIST and all(_is_number(item) for item in value):
                rows.append(json.dumps(list(value), allow_nan=False, separators=(", ", ":")))
                return f"{_MARK}{len(rows) - 1}{_MARK}"
            return [lift(item) for item in value]
        if isinstance(value, str) and _MARK in value:
            clash.append(value)
        return value

    clash: list[str] = []
    lifted = lift(document)
    if clash:  # a string that looks like the placeholder: write it plainly
        return json.dumps(document, indent=2, allow_nan=False)
    text = json.dumps(lifted, indent=2, allow_nan=False)
    return re.sub(f'"{_MARK}(\\d+){_MARK}"', lambda found: rows[int(found.group(1))], text)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
