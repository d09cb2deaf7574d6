"""Every check type's settings print: locations leave it alone, every measured field changes it."""

from __future__ import annotations

import importlib
import typing
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union

import pytest
from pydantic import BaseModel

from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.locations import PLACEHOLDER, blocks_in, location_fields
from robustness_checks.settings import (
    check_layer,
    measured_settings,
    resolve,
    settings_fingerprint,
)
from robustness_checks.spec.parse import validate_check
from robustness_checks.spec.schema import DataSpec

# Fields that say nothing about what is measured: the id, pytest marks, benchmark rounds and
# the time limit (the check stops, it does not measure otherwise).
NOT_MEASURED = {"name", "marks", "benchmark", "timeout"}
NO_VALUE = object()


@cache
def example(type_name: str) -> BaseModel:
    """A valid check of the type: its first gate case's fields (data given as tensors left
    out: the location cases give data sources below), else its defaults."""
    entry = CHECK_TYPES[type_name]
    params: dict[str, Any] = {}
    if entry.gate_cases is not None:
        module, function = entry.gate_cases.split(":")
        cases = getattr(importlib.import_module(module), function)()
        params = {k: v for k, v in cases[0].params.items() if k not in entry.data_fields}
    return validate_check({"name": "example", "type": type_name, **params})


def settings_print(check: BaseModel) -> str:
    settings = resolve([("check", check_layer(check))])
    return settings_fingerprint(measured_settings(check, settings, bounds=[0.0, 1.0]))


def replaced(block: BaseModel, path: list[str], value: Any) -> BaseModel:
    """`block` with the field at `path` set to `value` (no validation: only the print is
    asked about); '[]' steps into a list's first item."""
    name, rest = path[0], path[1:]
    if not rest:
        return block.model_copy(update={name: value})
    inner = getattr(block, name.removesuffix("[]"))
    if name.endswith("[]"):
        return block.model_copy(update={name[:-2]: [replaced(inner[0], rest, value), *inner[1:]]})
    return block.model_copy(update={name: replaced(inner, rest, value)})


def other_value(annotation: Any, current: Any) -> Any:
    """A value of `annotation` that differs from `current`; NO_VALUE when none is known."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return other_value(arguments[0], current)
    if origin in (Union, UnionType):
        if current is not None and type(None) in arguments:
            return None
        for arm in arguments:
            found = other_value(arm, current)
            if found is not NO_VALUE and found != current:
                return found
        return NO_VALUE
    if origin is Literal:  # the last choice: not the default the first often is (decision)
        others = [choice for choice in arguments if choice != current]
        return others[-1] if others else f"{current}x"  # `type`: another type's name
    if origin is list:
        item = other_value(arguments[0], None) if arguments else 1
        return [item] if [item] != current else [item, item]
    if origin is tuple:
        return (0.25, 0.75) if current != (0.25, 0.75) else (0.0, 0.5)
    if annotation is bool:
        return not current
    if annotation is int:
        return (current or 0) + 1
    if annotation is float:
        return 0.375 if current != 0.375 else 0.625
    if annotation is str:
        return f"{current}x" if isinstance(current, str) else "x"
    if origin is dict or annotation is dict:
        return {"changed": 1}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        try:
            return annotation() if current is None else NO_VALUE
        except ValueError:
            return NO_VALUE
    return NO_VALUE


def measured_fields(block: BaseModel, prefix: list[str]) -> list[tuple[list[str], Any, Any]]:
    """(path, annotation, current value) of every measured leaf field of `block`, nested blocks
    entered (a list of blocks through its first item)."""
    found = []
    locations = location_fields(type(block))
    for name, info in type(block).model_fields.items():
        if (not prefix and name in NOT_MEASURED) or name in locations:
            continue
        value = getattr(block, name)
        if blocks_in(info.annotation) and isinstance(value, BaseModel):
            found += measured_fields(value, [*prefix, name])
        elif blocks_in(info.annotation) and isinstance(value, list) and value:
            if isinstance(value[0], BaseModel):
                found += measured_fields(value[0], [*prefix, f"{name}[]"])
            else:
                found.append(([*prefix, name], info.annotation, value))
        else:
            found.append(([*prefix, name], info.annotation, value))
    return found


def location_cases() -> list[tuple[str, str, str]]:
    return [
        (type_name, path, kind)
        for type_name, entry in CHECK_TYPES.items()
        for path, kind in location_fields(entry.params).items()
    ]


@pytest.mark.parametrize(("type_name", "path", "kind"), location_cases())
def test_moving_a_location_leaves_the_settings_print_alone(
    type_name: str, path: str, kind: str
) -> None:
    check = example(type_name)
    steps = path.split(".")
    if kind == "data":
        here = DataSpec(tensors="data/ood.pt", limit=100)
        there = DataSpec(tensors="../../elsewhere/copy of ood.pt", limit=100, batch_size=64)
    else:
        here, there = ".cache/examples", "/tmp/elsewhere/examples"
    at_here, at_there = replaced(check, steps, here), replaced(check, steps, there)
    assert settings_print(at_here) == settings_print(at_there)
    # What the print holds in its place: nothing for a data source (its content is in the
    # data print), a placeholder for a path.
    fields = measured_settings(at_here, resolve([]))["check"]
    assert steps[-1] not in fields if kind == "data" else PLACEHOLDER in str(fields)


def test_every_location_field_is_found_by_type() -> None:
    found = {name: location_fields(entry.params) for name, entry in CHECK_TYPES.items()}
    assert found["ood"] == {"ood_data": "data", "fit_data": "data"}
    assert found["failure_prediction"] == {"fit_data": "data"}
    assert found["fuzz"] == {"database": "path"}
    assert found["calibration"] == {} and found["adversarial"] == {}


def measured_cases() -> list[tuple[str, str]]:
    """(type, field path) of every measured field; (type, '') for a type with no example (its
    test then fails saying so: declare gate cases, whose fields make one)."""
    found = []
    for type_name in CHECK_TYPES:
        try:
            fields = measured_fields(example(type_name), [])
        except ValueError:
            fields = [([""], None, None)]
        found += [(type_name, ".".join(path)) for path, _, _ in fields]
    return found


@pytest.mark.parametrize(("type_name", "path"), measured_cases())
def test_changing_a_measured_field_changes_the_settings_print(type_name: str, path: str) -> None:
    check = example(type_name)  # raises for a type with no example: see measured_cases
    annotation, current = next(
        (a, v) for p, a, v in measured_fields(check, []) if ".".join(p) == path
    )
    value = other_value(annotation, current)
    assert value is not NO_VALUE, f"no other value known for {type_name}.{path} ({annotation})"
    changed = replaced(check, path.split("."), value)
    assert settings_print(changed) != settings_print(check), f"{path}: {current!r} -> {value!r}"


def test_every_check_type_has_measured_fields_under_test() -> None:
    for type_name in CHECK_TYPES:
        names = {".".join(path) for path, _, _ in measured_fields(example(type_name), [])}
        assert {"type", "limit", "decision", "confidence"} <= names, type_name
