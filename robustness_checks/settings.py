"""Run settings of one check (seed, decision, confidence, timeout, device), resolved once."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from robustness_checks.errors import RobustnessError
from robustness_checks.spec.schema import (
    ConfidenceLevel,
    DecisionRule,
    Seconds,
    check_device,
)

FIELDS = ("seed", "decision", "confidence", "timeout", "device")
# The settings that change what a check measures (timeout and device do not): they enter the
# settings fingerprint that baselines compare.
MEASURED = ("seed", "decision", "confidence")


class SettingsError(RobustnessError):
    """A setting given on the command line or in the ini file that is not valid."""


class SettingsLayer(BaseModel):
    """One source of settings (command line, check, spec, ini, default); None where it is silent."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seed: int | None = None
    decision: DecisionRule | None = None
    confidence: ConfidenceLevel | None = None
    timeout: Seconds | None = None
    device: str | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str | None) -> str | None:
        return None if device is None else check_device(device)

    @classmethod
    def parse(cls, names: dict[str, str], **values: Any) -> SettingsLayer:
        """A layer from raw values; a SettingsError naming each bad value by `names[field]` (the
        option or ini key it came from), with the messages spec files get."""
        from robustness_checks.spec.parse import explain

        try:
            return cls(**{key: value for key, value in values.items() if value is not None})
        except ValidationError as error:
            lines = []
            for item in error.errors(include_url=False):
                field = str(item["loc"][0]) if item["loc"] else ""
                lines.append(f"{names.get(field, field)}: {explain(item, cls, item['loc'])}")
            raise SettingsError("; ".join(lines)) from None


DEFAULTS = SettingsLayer(seed=0, decision="point", confidence=0.95, device="auto")


class RunSettings(BaseModel):
    """The settings one check runs with, and where each came from."""

    model_config = ConfigDict(frozen=True)

    seed: int
    decision: DecisionRule
    confidence: ConfidenceLevel
    timeout: Seconds | None = None
    device: str = "auto"
    sources: dict[str, str] = Field(default_factory=dict)

    def measured(self) -> dict[str, Any]:
        """The settings that change what the check measures (seed, decision, confidence)."""
        return {name: getattr(self, name) for name in MEASURED}


def resolve(layers: Sequence[tuple[str, SettingsLayer]]) -> RunSettings:
    """Each setting from the first layer that gives it (`is not None`, so 0 counts); layers
    in precedence order, e.g. command line, check, spec, ini, then DEFAULTS."""
    chosen: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in [*layers, ("default", DEFAULTS)]:
        for name in FIELDS:
            value = getattr(layer, name)
            if name not in sources and value is not None:
                chosen[name], sources[name] = value, source
    return RunSettings(**chosen, sources=sources)


def check_layer(check: Any) -> SettingsLayer:
    """What a check's own fields say (decision, confidence, timeout)."""
    return SettingsLayer(
        decision=getattr(check, "decision", None),
        confidence=getattr(check, "confidence", None),
        timeout=getattr(check, "timeout", None),
    )


def spec_layer(spec: Any) -> SettingsLayer:
    """What a spec's top level says (seed, decision, confidence, timeout, device)."""
    return SettingsLayer(
        seed=spec.seed,
        decision=spec.decision,
        confidence=spec.confidence,
        timeout=spec.timeout,
        device=spec.device,
    )


def measured_settings(check: Any, settings: RunSettings, **context: Any) -> dict[str, Any]:
    """What a check measures with: its fields, the measured run settings, and `context` (the
    spec's bounds, say). JSON-ready. Left out: name, marks, benchmark and the raw settings
    fields; and, found by type (`robustness_checks.locations`), every location: a data source
    that is given (ood_data, fit_data: its content, limit and transforms included, is in the data
    fingerprint) and a `Location` field's path (a spec moved with its files measures the same)."""
    from robustness_checks.locations import without_locations

    skipped = {"name", "marks", "benchmark", "decision", "confidence", "timeout"}
    fields = without_locations(check.model_dump(mode="json", exclude=skipped), type(check))
    if fields.get("limit", 0) is None:
        del fields["limit"]  # every check has it: unset, baselines saved before it stay comparable
    return json.loads(json.dumps({"check": fields, **settings.measured(), **context}, default=str))


def settings_fingerprint(measured: dict[str, Any]) -> str:
    """sha256 of `measured_settings`."""
    return hashlib.sha256(json.dumps(measured, sort_keys=True).encode()).hexdigest()


# The command-line and ini layers of the pytest session this process runs in, so that checks
# run from test functions (the `robustness` fixture or a direct library call) follow them too.
_SESSION: ContextVar[tuple[SettingsLayer, SettingsLayer] | None] = ContextVar(
    "robustness_session_settings", default=None
)


@contextlib.contextmanager
def session_layers(command_line: SettingsLayer, ini: SettingsLayer) -> Iterator[None]:
    """Make `command_line` and `ini` the outer layers of every check resolved inside."""
    token = _SESSION.set((command_line, ini))
    try:
        yield
    finally:
        _SESSION.reset(token)


def set_session_layers(command_line: SettingsLayer, ini: SettingsLayer) -> Any:
    """`session_layers` for hooks that begin and end in different calls; returns the token."""
    return _SESSION.set((command_line, ini))


def reset_session_layers(token: Any) -> None:
    _SESSION.reset(token)


def in_session() -> bool:
    """Whether checks run inside a pytest session with the plugin (results may be gated)."""
    return _SESSION.get() is not None


def resolve_call(check: SettingsLayer) -> RunSettings:
    """Settings of a check run from Python: the pytest session's command line, then the call's
    own arguments, then the session's ini, then the defaults."""
    found = _SESSION.get()
    if found is None:
        return resolve([("call", check)])
    command_line, ini = found
    return resolve([("command line", command_line), ("call", check), ("ini", ini)])
