"""Pydantic validation errors as sentences a spec author reads: the field as written, one each."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from robustness_checks.spec.numbers import ERROR_TYPE, NumberRule

Location = tuple[str | int, ...]
# Errors that say a value has the wrong kind for one member of a union (a list for a number, a
# string for a list): when every member says so, the field gets one sentence listing them all.
_KIND_ERRORS = {
    "bool_parsing",
    "float_parsing",
    "int_from_float",
    "int_parsing",
    "literal_error",
    "enum",
    "is_instance_of",
    "none_required",
}
_NO_GOT = {"value_error", "assertion_error", ERROR_TYPE, "extra_forbidden", "missing"}


def located_messages(
    error: ValidationError, model: type[BaseModel], data: Any
) -> list[tuple[Location, str]]:
    """(location as the author wrote it, message) for every problem of `error`; the errors of
    one union field (one per member: number, list, ...) become the member's own or one sentence."""
    entries: list[tuple[Location, Any]] = []  # (path, item), or (a union's location, None)
    unions: dict[Location, list[tuple[Location, Any]]] = {}
    for item in error.errors(include_url=False):
        path, union_at, tag = _split(tuple(item["loc"]), data, item["type"])
        if union_at is None:
            entries.append((path, item))
            continue
        if union_at not in unions:
            entries.append((union_at, None))
            unions[union_at] = []
        unions[union_at].append(((tag, *path[len(union_at) :]), item))
    found: list[tuple[Location, str]] = []
    for path, item in entries:
        if item is None:
            found += _union_messages(path, unions[path], model, data)
        else:
            found.append((path, explain(item, model, path)))
    return found


def _split(loc: Location, data: Any, kind: str) -> tuple[Location, Location | None, str]:
    """`loc` without pydantic's union member tags ('constrained-float', 'list[...]'), where the
    first union is, and its tag. A part is the author's when the data holds it there."""
    path: list[str | int] = []
    union_at: Location | None = None
    tag = ""
    current, known = data, True
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if known and isinstance(current, dict) and part in current:
            current = current[part]
        elif known and isinstance(current, list | tuple) and isinstance(part, int):
            known = 0 <= part < len(current)
            current = current[part] if known else None
        elif known and isinstance(current, BaseModel) and part in type(current).model_fields:
            current = getattr(current, part)
        elif isinstance(part, int) or (last and kind in ("missing", "extra_forbidden")):
            known = False
        elif not known:
            pass  # below a key that is not in the data: keep what pydantic says
        else:
            if union_at is None:
                union_at, tag = tuple(path), str(part)
            continue
        path.append(part)
    return tuple(path), union_at, tag


def _union_messages(
    where: Location, members: list[tuple[Location, Any]], model: type[BaseModel], data: Any
) -> list[tuple[Location, str]]:
    value = _value_at(data, where)
    tags: dict[str, list[tuple[Location, Any]]] = {}
    for (tag, *rest), item in members:
        tags.setdefault(str(tag), []).append((tuple(rest), item))
    fitting = [errors for errors in tags.values() if _fits(errors, value)]
    if len(fitting) == 1:
        return [
            ((*where, *rest), explain(item, model, (*where, *rest))) for rest, item in fitting[0]
        ]
    name = _leaf(where)
    allowed = describe(annotation_at(model, where))
    return [(where, f"{name} must be {allowed} (got {shown(value)})")]


def _fits(errors: list[tuple[Location, Any]], value: Any) -> bool:
    """Whether a union member's errors are about `value` itself, not about its kind."""
    for rest, item in errors:
        if rest:
            return True  # the member looked inside: the value has its shape
        kind = item["type"]
        wrong_kind = kind.endswith("_type") or kind in _KIND_ERRORS
        if kind == ERROR_TYPE:
            wrong_kind = isinstance(value, list | tuple | dict) or value is None
        if not wrong_kind:
            return True
    return False


def explain(item: Any, model: type[BaseModel], location: Location) -> str:
    """The message a spec author reads for one pydantic error item."""
    kind = item["type"]
    if kind == "extra_forbidden":
        key = str(location[-1])
        allowed = _allowed_keys(model, location[:-1])
        hint = _did_you_mean(key, allowed)
        return f"unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dataclass_type"):
        allowed = ", ".join(_allowed_keys(model, location))
        got = shown(item.get("input"))
        return f"{_leaf(location)} must be a mapping with keys among {allowed} (got {got})"
    message = item["msg"].removeprefix("Value error, ")
    if kind == ERROR_TYPE:
        return f"{_leaf(location)} {message}"
    if kind in ("too_short", "too_long"):
        context = item.get("ctx", {})
        limit = context.get("min_length" if kind == "too_short" else "max_length")
        most = "at least" if kind == "too_short" else "at most"
        found = context.get("actual_length")
        return f"{_leaf(location)} needs {most} {limit} items (got {found})"
    hint = ""
    if kind == "literal_error" and isinstance(item.get("input"), str):
        choices = re.findall(r"'([^']*)'", str(item.get("ctx", {}).get("expected", "")))
        hint = _did_you_mean(item["input"], choices).replace(" (", "; ").rstrip(")")
    if kind not in _NO_GOT and "input" in item:
        message += f" (got {shown(item['input'])}{hint})"
    return message


def _leaf(location: Location) -> str:
    names = [part for part in location if isinstance(part, str)]
    return names[-1] if names else "value"


def shown(value: Any) -> str:
    """A value as YAML wrote it, short: 'x', 3, true, null, [1, 2]."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _value_at(data: Any, location: Location) -> Any:
    for part in location:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list | tuple) and isinstance(part, int) and part < len(data):
            data = data[part]
        elif isinstance(data, BaseModel) and isinstance(part, str):
            data = getattr(data, part, None)
        else:
            return None
    return data


def annotation_at(model: type[BaseModel], location: Location) -> Any:
    """The type annotation of the field at `location` (field names and list indices), with its
    constraints; Any where the walk leaves the models."""
    current: Any = model
    for part in location:
        current = _members(current)
        if isinstance(part, int):
            items = [typing.get_args(m) for m in current if typing.get_origin(m) in (list, tuple)]
            current = items[0][0] if items and items[0] else Any
            continue
        blocks = [m for m in current if isinstance(m, type) and issubclass(m, BaseModel)]
        if not blocks or part not in blocks[0].model_fields:
            return Any
        field = blocks[0].model_fields[part]
        current = (
            typing.Annotated[(field.annotation, *field.metadata)]
            if field.metadata
            else (field.annotation)
        )
    return current


def _members(annotation: Any) -> list[Any]:
    """The members of a union (None left out; each with its Annotated unwrapped), or [it]."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a) if m is not type(None)]
    return [annotation]


def describe(annotation: Any) -> str:
    """What a value of `annotation` may be, in words: 'a number >= 0 or a fraction like 8/255,
    or a list of them', "an integer >= 0 or 'least_likely'", "true, false or 'auto'"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        rule = next((m for m in args[1:] if isinstance(m, NumberRule)), None)
        if rule is not None:
            return rule.describe()
        return describe(args[0]) + _bounds(args[1:])
    if origin in (typing.Union, types.UnionType):
        parts: list[str] = []
        choices: list[str] = []
        for member in args:
            if member is type(None):
                continue
            if member is bool or typing.get_origin(member) is typing.Literal:
                choices += _choices(member)
                continue
            text = describe(member)
            if parts and typing.get_origin(member) is list and text == f"a list of {parts[-1]}":
                text = "a list of them"
            parts.append(text)
        if choices:
            parts.append(_joined(choices, "or"))
        return _joined(list(dict.fromkeys(parts)), "or")
    if origin is typing.Literal or annotation is bool:
        return _joined(_choices(annotation), "or")
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values"
        return f"a list of {describe(args[0]) if args else 'values'}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a mapping with keys among {', '.join(annotation.model_fields)}"
    names = {int: "an integer", float: "a number", str: "text", dict: "a mapping"}
    return names.get(annotation, "a valid value") if isinstance(annotation, type) else "a value"


def _choices(annotation: Any) -> list[str]:
    values = (True, False) if annotation is bool else typing.get_args(annotation)
    return [str(v).lower() if isinstance(v, bool) else repr(v) for v in values]


def _bounds(metadata: Iterable[Any]) -> str:
    """' >= 1 and <= 100' from Field(ge=1, le=100) or annotated_types constraints."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    words = []
    for meta in metadata:
        for constraint in meta.metadata if isinstance(meta, FieldInfo) else [meta]:
            if isinstance(constraint, annotated_types.BaseMetadata):
                for attribute, sign in signs.items():
                    bound = getattr(constraint, attribute, None)
                    if isinstance(bound, int | float):
                        words.append(f"{sign} {bound:g}")
    return " " + " and ".join(words) if words else ""


def _joined(parts: list[str], word: str) -> str:
    if len(parts) == 1:
        return parts[0]
    comma = ", " if any(f" {w} " in part for part in parts for w in (word, "and")) else " "
    return f"{', '.join(parts[:-1])}{comma}{word} {parts[-1]}"


def _allowed_keys(model: type[BaseModel], location: Location) -> list[str]:
    current: Any = model
    for part in location:
        if isinstance(part, int):
            continue
        block = _model_in(current)
        if block is None or part not in block.model_fields:
            return []
        current = block.model_fields[part].annotation
    block = _model_in(current)
    return list(block.model_fields) if block is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
