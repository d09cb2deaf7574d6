"""Which settings of a check differ from its baseline's, read from both records' `settings`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from robustness_checks.fingerprints import Fingerprints
from robustness_checks.locations import blocks_in, without_locations
from robustness_checks.settings import settings_fingerprint


class _Missing:
    """A setting one record does not hold (saved before the field existed)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class SettingChange:
    """One setting whose value differs: `attack.eps` 0.03 in the baseline, 0.05 now."""

    name: str  # a check field by its YAML path (attack.eps), or a run setting (seed, bounds)
    before: Any
    now: Any

    def text(self) -> str:
        return f"{self.name} {shown(self.before)} -> {shown(self.now)}"


def shown(value: Any) -> str:
    """A setting's value as the message writes it: 'point', 0.03, [0.05, 0.1], unset."""
    if value is MISSING:
        return "(not recorded)"
    if value is None:
        return "unset"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value)


def recorded_settings(record: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """A record's `settings`, every location left out as today's settings fingerprint leaves it
    out (so a baseline saved while a path was hashed still compares), and ''; or None and why
    they cannot be used: not recorded, or not what its settings fingerprint was made from."""
    settings = record.get("settings")
    prints = Fingerprints.from_json(record.get("fingerprints"))
    if not isinstance(settings, dict) or not isinstance(settings.get("check"), dict):
        return None, "records no settings (a file saved by an earlier version)"
    if prints is not None and settings_fingerprint(settings) != prints.check:
        return None, "has settings that do not give its settings fingerprint (an edited file)"
    model = params_model(record.get("type"))
    if model is not None:
        settings = {**settings, "check": without_locations(settings["check"], model)}
    return settings, ""


def settings_changes(
    now: dict[str, Any], before: dict[str, Any]
) -> tuple[list[SettingChange] | None, str]:
    """The settings of record `now` that differ from those of its baseline record `before`,
    check fields first; a setting only one side holds is no change when it has its default
    there (a field added since, whose default measures as before). None, and why, when either
    side's settings cannot be read."""
    found_now, why_now = recorded_settings(now)
    found_before, why_before = recorded_settings(before)
    if found_now is None or found_before is None:
        return None, f"this run {why_now}" if found_now is None else f"the baseline {why_before}"
    model = params_model(now.get("type"))
    flat_now, flat_before = _flatten(found_now), _flatten(found_before)
    changes = []
    for key in sorted(set(flat_now) | set(flat_before), key=lambda k: (not _is_field(k), k)):
        old, new = flat_before.get(key, MISSING), flat_now.get(key, MISSING)
        if old is MISSING or new is MISSING:
            # Not recorded on one side: it had its default there (MISSING when unknown).
            default = default_of(key, model)
            old, new = (default, new) if old is MISSING else (old, default)
        if old != new:
            changes.append(SettingChange(key.removeprefix("check."), old, new))
    return changes, ""


def params_model(type_name: Any) -> type[BaseModel] | None:
    """The parameter model of a registered check type, or None."""
    from robustness_checks.checks.registry import CHECK_TYPES

    entry = CHECK_TYPES.get(str(type_name))
    return None if entry is None else entry.params


def default_of(key: str, model: type[BaseModel] | None) -> Any:
    """The default of a flattened setting ('check.attack.steps', 'precision'), JSON-ready;
    MISSING when it has none (a required field, one this version does not know)."""
    from robustness_checks.spec.schema import ModelSpec, Spec

    parts = key.split(".")
    if parts[0] == "check":
        blocks, parts = ([] if model is None else [model]), parts[1:]
    else:
        blocks = [Spec, ModelSpec]
    info = None
    for position, part in enumerate(parts):
        info = next((b.model_fields[part] for b in blocks if part in b.model_fields), None)
        if info is None:
            return MISSING
        if position < len(parts) - 1:
            blocks = blocks_in(info.annotation)
    if info is None or info.is_required():
        return MISSING
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))


def _is_field(key: str) -> bool:
    return key.startswith("check.")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested blocks as dotted keys ({'check': {'attack': {'eps': 1}}} -> check.attack.eps);
    lists stay whole."""
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_flatten(item, f"{prefix}{key}."))
        return found
    return {prefix.rstrip("."): value}
