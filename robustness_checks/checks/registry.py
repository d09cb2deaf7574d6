"""The one registry of check types: the built-in ones and those installed through entry points."""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points

from robustness_checks.checks.check_type import CheckType
from robustness_checks.errors import PYTHON_CALL, RobustnessError, SpecError, SpecProblem

ENTRY_POINT_GROUP = "robustness_checks.checks"
BUILTIN_MODULES = (
    "calibration",
    "adversarial",
    "entropy_trend",
    "selective",
    "ood",
    "failure_prediction",
    "noise",
    "fuzz",
)


class CheckTypeError(RobustnessError):
    """An entry point of the `robustness_checks.checks` group that is not a usable CheckType."""


def _builtin() -> list[CheckType]:
    return [
        importlib.import_module(f"robustness_checks.checks.{module}").CHECK
        for module in BUILTIN_MODULES
    ]


def _installed() -> list[CheckType]:
    """The CheckType records that installed packages declare in the entry-point group."""
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry = point.load()
        except Exception as error:
            raise CheckTypeError(
                f"entry point {point.name!r} = {point.value!r} of group {ENTRY_POINT_GROUP!r} "
                f"cannot be imported: {type(error).__name__}: {error}"
            ) from error
        if not isinstance(entry, CheckType):
            raise CheckTypeError(
                f"entry point {point.name!r} = {point.value!r} of group {ENTRY_POINT_GROUP!r} "
                f"is a {type(entry).__name__}, not a robustness_checks CheckType record"
            )
        found.append(entry)
    return found


def load_check_types() -> dict[str, CheckType]:
    """Every check type by name, built-ins first; a name declared twice is an error."""
    types: dict[str, CheckType] = {}
    for entry in [*_builtin(), *_installed()]:
        if entry.name in types and types[entry.name] is not entry:
            first, second = types[entry.name].run.__module__, entry.run.__module__
            raise CheckTypeError(
                f"check type {entry.name!r} is declared twice (by {first} and {second}); "
                "uninstall one of the packages"
            )
        types[entry.name] = entry
    return types


CHECK_TYPES: dict[str, CheckType] = load_check_types()


def reload() -> dict[str, CheckType]:
    """Discover entry points again (after installing a package in this process)."""
    CHECK_TYPES.clear()
    CHECK_TYPES.update(load_check_types())
    return CHECK_TYPES


def check_type(name: str) -> CheckType:
    """The record for `name`; a SpecError (a ValueError) naming the known types otherwise."""
    try:
        return CHECK_TYPES[name]
    except (KeyError, TypeError):
        raise SpecError(
            PYTHON_CALL, [SpecProblem(unknown_type_message(name), field="type")]
        ) from None


def unknown_type_message(name: object) -> str:
    """'unknown check type 'x' (did you mean ...?); known types: ...'."""
    close = difflib.get_close_matches(str(name), list(CHECK_TYPES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown check type {name!r}{hint}; known types: {', '.join(sorted(CHECK_TYPES))}"


def lower_is_better(check_type_name: str | None, metric: str | None) -> bool | None:
    """Whether a lower `metric` of the type is better, from its record; None when unknown."""
    entry = CHECK_TYPES.get(check_type_name or "")
    return None if entry is None or metric is None else entry.lower_is_better(metric)
