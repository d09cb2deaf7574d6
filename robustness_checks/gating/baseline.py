"""Baselines for release gating: save a run by name, load one, and find regressions against it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustness_checks.errors import RobustnessError
from robustness_checks.reporting.atomic import write_text_atomic

_RULE = re.compile(r"^(?P<key>[^:]+):(?P<op>[+x*])?(?P<amount>[0-9.eE+-]+)(?P<percent>%)?$")


class BaselineError(RobustnessError):
    """A baseline that is missing, unreadable or of another schema."""


def check_save_name(name: str) -> None:
    """A baseline name is a plain file name: letters, digits, '.', '_', '-' (no '..', no '/')."""
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name) or ".." in name:
        raise BaselineError(
            f"--robustness-save {name!r}: a baseline name may hold only letters, digits, '.', "
            "'_' and '-' (it becomes NAME.json in --robustness-storage)"
        )


def save_baseline(storage: Path, name: str, document: dict[str, Any]) -> Path:
    """Store a results document as `storage/NAME.json` (named, not keyed by machine)."""
    check_save_name(name)
    return write_text_atomic(
        storage / f"{name}.json", json.dumps({**document, "baseline": name}, indent=2) + "\n"
    )


def load_baseline(storage: Path, reference: str | None) -> dict[str, Any]:
    """The baseline named `reference` in `storage`, a path to one, or the newest saved (None)."""
    if reference is None:
        saved = sorted(storage.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not saved:
            raise BaselineError(
                f"no baseline saved in {storage}/ yet; save one with --robustness-save NAME"
            )
        path = saved[-1]
    else:
        path = Path(reference)
        if not (path.suffix == ".json" and path.is_file()):
            path = storage / f"{reference}.json"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in storage.glob("*.json"))) or "none"
        raise BaselineError(
            f"no baseline {reference!r}: {path} does not exist (saved in "
            f"{storage}/: {available}); save one with --robustness-save NAME"
        )
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BaselineError(f"baseline {path} is not a readable JSON file: {error}") from None
    if not isinstance(document, dict) or document.get("schema_version") != 1:
        raise BaselineError(f"baseline {path} is not a results file of schema_version 1")
    results = document.get("results")
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and isinstance(r.get("nodeid"), str) for r in results
    ):
        raise BaselineError(
            f"baseline {path} is malformed: 'results' must be a list of result objects, each "
            "with a 'nodeid'; save it again with --robustness-save NAME"
        )
    if not results:
        raise BaselineError(f"baseline {path} holds no results, so it can gate nothing")
    document.setdefault("baseline", path.stem)
    return document


@dataclass(frozen=True)
class Rule:
    """An allowed change: `key:+0.01` (absolute), `key:+2%` (relative) or `key:x2` (factor)."""

    key: str
    kind: str  # "absolute", "relative", "factor" or "significant"
    amount: float
    text: str


def parse_rule(text: str) -> Rule:
    """A `--robustness-compare-fail` expression."""
    key, _, how = text.strip().rpartition(":")
    if how == "significant" and key:
        return Rule(key, "significant", 0.0, text)
    match = _RULE.match(text.strip())
    if not match:
        raise BaselineError(
            f"cannot read --robustness-compare-fail {text!r}: use KEY:+ABS (ece:+0.01), "
            "KEY:+PCT% (adversarial:+2%), KEY:xFACTOR (noise:x2) or KEY:significant, where KEY "
            "is a metric, a check name (or a glob pattern of names), a check type, evaluations, "
            "seconds or *"
        )
    try:
        amount = float(match["amount"])
    except ValueError:
        raise BaselineError(f"cannot read the amount in {text!r}") from None
    if match["op"] in ("x", "*"):
        if amount < 1:
            raise BaselineError(f"{text!r}: a factor must be at least 1")
        return Rule(match["key"], "factor", amount, text)
    if amount < 0:
        raise BaselineError(f"{text!r}: the allowed change must not be negative")
    kind = "relative" if match["percent"] else "absolute"
    return Rule(match["key"], kind, amount / 100 if match["percent"] else amount, text)


COST_KEYS = ("evaluations", "seconds")
SECONDS_FLOOR = 1.0  # wall time under this many seconds never fails a seconds:xF gate
