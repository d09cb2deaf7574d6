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
    """A check type whose record or results cannot be used (usually a third-party one)."""


def _builtin() -> list[CheckType]:
    return [
        importlib.import_module(f"robustness_checks.checks.{module}").CHECK
        for module in BUILTIN_MODULES
    ]


def _installed() -> list[CheckType]:
    """The CheckType records that installed packages declare in the entry-point group; a broken
    one is left out and kept in BROKEN, so it fails only the specs that use it."""
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name!r} = {point.value!r} of group {ENTRY_POINT_GROUP!r}"
        try:
            entry = point.load()
        except Exception as error:
            BROKEN[point.name] = f"{where} cannot be imported: {type(error).__name__}: {error}"
            continue
        problem = _record_problem(entry)
        if problem is not None:
            BROKEN[getattr(entry, "name", point.name)] = f"{where}: {problem}"
            continue
        found.append(entry)
    return found


def _record_problem(entry: object) -> str | None:
    """What makes `entry` unusable as a check type record, or None."""
    from robustness_checks.spec.schema import CheckSpec

    if not isinstance(entry, CheckType):
        return f"is a {type(entry).__name__}, not a robustness_checks CheckType record"
    if not (isinstance(entry.params, type) and issubclass(entry.params, CheckSpec)):
        return (
            f"its params is {entry.params!r}, not a subclass of "
            "robustness_checks.spec.schema.CheckSpec"
        )
    if not callable(entry.run):
        return "its run is not callable"
    return None


def origin(entry: CheckType) -> str:
    """The module that defines a check type's run function (for messages about its results)."""
    return getattr(entry.run, "__module__", None) or "an unknown module"


def load_check_types() -> dict[str, CheckType]:
    """Every check type by name, built-ins first; a name declared twice is an error."""
    BROKEN.clear()
    types: dict[str, CheckType] = {}
    for entry in [*_builtin(), *_installed()]:
        if entry.name in types and types[entry.name] is not entry:
            first, second = origin(types[entry.name]), origin(entry)
            BROKEN[entry.name] = (
                f"check type {entry.name!r} is declared twice (by {first} and {second}); "
                "uninstall one of the packages"
            )
            continue
        types[entry.name] = entry
    return types


# Check types whose entry point could not be used, by name: why.
BROKEN: dict[str, str] = {}
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
    if isinstance(name, str) and name in BROKEN:
        return f"check type {name!r} is installed but cannot be used: {BROKEN[name]}"
    close = difflib.get_close_matches(str(name), list(CHECK_TYPES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown check type {name!r}{hint}; known types: {', '.join(sorted(CHECK_TYPES))}"


def lower_is_better(check_type_name: str | None, metric: str | None) -> bool | None:
    """Whether a lower `metric` of the type is better, from its record; None when unknown."""
    entry = CHECK_TYPES.get(check_type_name or "")
    return None if entry is None or metric is None else entry.lower_is_better(metric)
