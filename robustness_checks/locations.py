"""Check fields that say where something is (a data source, a file or folder), not what it is."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel

Kind = Literal["data", "path"]
# What a location field's text becomes in the settings that fingerprints hash.
PLACEHOLDER = "(location)"


class LocationMarker:
    """Marks a text field as a location: `Annotated[str, LOCATION]` (see `Location`)."""

    def __repr__(self) -> str:
        return "LOCATION"


LOCATION = LocationMarker()
# A file or folder whose path is not a setting (a check field typed so keeps its path out of
# the settings fingerprint; where its content matters, that content is fingerprinted instead).
Location = Annotated[str, LOCATION]


def field_kind(annotation: Any) -> Kind | None:
    """'data' for a data source (a DataSpec: its content is in the data fingerprint), 'path'
    for a `Location`, None for anything else; through Optional, unions and Annotated."""
    from robustness_checks.spec.schema import DataSpec

    if isinstance(annotation, type) and issubclass(annotation, DataSpec):
        return "data"
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is Annotated:
        if any(isinstance(item, LocationMarker) for item in arguments[1:]):
            return "path"
        return field_kind(arguments[0])
    if origin in (Union, types.UnionType):
        kinds = {field_kind(item) for item in arguments} - {None}
        return "data" if "data" in kinds else "path" if kinds else None
    return None


def blocks_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic blocks a field holds (itself, in an Optional or union, or in a list)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for item in typing.get_args(annotation):
        found += [block for block in blocks_in(item) if block not in found]
    return found


def location_fields(model: type[BaseModel], prefix: str = "") -> dict[str, Kind]:
    """Every location field of `model`, nested blocks included, by dotted path ('[]' marks a
    list's items): `{'ood_data': 'data', 'database': 'path'}`. Data sources count at the top
    only: those are what a spec loads and fingerprints by content (`data_fields`); one inside a
    block is an ordinary block, its paths kept."""
    found: dict[str, Kind] = {}
    for name, info in model.model_fields.items():
        kind = _kind(info.annotation, top=not prefix)
        if kind is not None:
            found[prefix + name] = kind
            continue
        listed = typing.get_origin(info.annotation) is list or any(
            typing.get_origin(item) is list for item in typing.get_args(info.annotation)
        )
        for block in blocks_in(info.annotation):
            found.update(location_fields(block, f"{prefix}{name}{'[]' if listed else ''}."))
    return found


def without_locations(
    values: dict[str, Any], model: type[BaseModel], *, top: bool = True
) -> dict[str, Any]:
    """`values` (a JSON dump of a check of type `model`, or of a block inside it) with each
    data source that is given left out and each location's text replaced by PLACEHOLDER, as
    `location_fields` finds them; unset ones (None, false) kept."""
    kept: dict[str, Any] = {}
    for name, value in values.items():
        info = model.model_fields.get(name)
        kind = None if info is None else _kind(info.annotation, top=top)
        if kind == "data" and value is not None:
            continue
        if kind == "path" and isinstance(value, str):
            value = PLACEHOLDER
        elif info is not None and kind is None:
            value = _nested(value, blocks_in(info.annotation))
        kept[name] = value
    return kept


def _nested(value: Any, blocks: list[type[BaseModel]]) -> Any:
    if not blocks:
        return value
    if isinstance(value, list):
        return [_nested(item, blocks) for item in value]
    if not isinstance(value, dict):
        return value
    block = next((b for b in blocks if set(value) <= set(b.model_fields)), blocks[0])
    return without_locations(value, block, top=False)


def _kind(annotation: Any, *, top: bool) -> Kind | None:
    kind = field_kind(annotation)
    return None if kind == "data" and not top else kind
