"""The one registry mapping a check `type` to its parameter model and function."""

from __future__ import annotations

from robustness_checks.checks import (
    adversarial,
    calibration,
    entropy_trend,
    failure_prediction,
    fuzz,
    noise,
    ood,
    selective,
)
from robustness_checks.checks.common.bounds import CheckType

CHECK_TYPES: dict[str, CheckType] = {
    entry.name: entry
    for entry in (
        calibration.CHECK,
        adversarial.CHECK,
        entropy_trend.CHECK,
        selective.CHECK,
        ood.CHECK,
        failure_prediction.CHECK,
        noise.CHECK,
        fuzz.CHECK,
    )
}


def check_type(name: str) -> CheckType:
    """The registry entry for `name`, with the known types in the error."""
    try:
        return CHECK_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(CHECK_TYPES))
        raise KeyError(f"unknown check type {name!r}; known types: {known}") from None
