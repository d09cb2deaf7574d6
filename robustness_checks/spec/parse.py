"""Turn a spec file into a validated `SpecDocument`, or a `SpecError` listing every problem."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from robustness_checks.errors import PYTHON_CALL, SpecError, SpecProblem
from robustness_checks.spec.messages import explain, located_messages
from robustness_checks.spec.schema import CheckSpec, Spec, SpecTop
from robustness_checks.spec.yaml_lines import (
    LineMap,
    Location,
    YamlLimitError,
    load_yaml_with_lines,
)

__all__ = ["SpecDocument", "explain", "load_spec", "parse_spec_text", "validate_check"]


@dataclass(frozen=True)
class SpecDocument:
    """A validated spec with where it came from: paths in it are relative to `base_dir`."""

    path: Path
    spec: Spec
    lines: LineMap
    sha256: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_spec(path: str | Path, *, check_sources: bool = True) -> SpecDocument:
    """Read and validate a spec file; with `check_sources`, also check its files and factories."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SpecError(str(path), [SpecProblem(f"cannot read the file: {error}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SpecError(
            str(path),
            [
                SpecProblem(
                    f"the file is not UTF-8 text: byte {error.start} (0x{raw[error.start]:02x}) "
                    "cannot be decoded; save the spec as UTF-8",
                    line=line,
                )
            ],
        ) from None
    document = parse_spec_text(text, path)
    if check_sources:
        from robustness_checks.loading.sources import source_problems

        problems = source_problems(document.spec, document.base_dir)
        if problems:
            raise SpecError(str(path), [_locate(loc, msg, document.lines) for loc, msg in problems])
    return document


def parse_spec_text(text: str, path: str | Path = "<spec>") -> SpecDocument:
    """Validate spec `text`; `path` names it in messages and anchors relative paths."""
    path = Path(path)
    name = str(path)
    try:
        data, lines = load_yaml_with_lines(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = error.problem or str(error)
        raise SpecError(name, [SpecProblem(f"malformed YAML: {reason}", line=line)]) from None
    except yaml.YAMLError as error:
        raise SpecError(name, [SpecProblem(f"malformed YAML: {error}")]) from None
    except YamlLimitError as error:
        raise SpecError(name, [SpecProblem(str(error), line=error.line)]) from None
    except (ValueError, RecursionError, MemoryError) as error:
        reason = f"{type(error).__name__}: {error}"
        if "integer string conversion" in str(error):
            reason = "a number has more digits than Python converts (4300); write a smaller one"
        raise SpecError(name, [SpecProblem(f"a value cannot be read: {reason}")]) from None
    if data is None:
        raise SpecError(
            name, [SpecProblem("the file is empty; a spec needs at least model, data and checks")]
        )
    if not isinstance(data, dict):
        raise SpecError(
            name,
            [
                SpecProblem(
                    f"a spec must be a mapping with keys model, data and checks, "
                    f"not a {type(data).__name__}",
                    line=1,
                )
            ],
        )
    problems: list[SpecProblem] = []
    top: SpecTop | None = None
    try:
        top = SpecTop.model_validate(data)
    except ValidationError as error:
        problems += _problems(error, SpecTop, (), lines, data)
    checks = _validate_checks(data.get("checks"), lines, problems)
    if problems or top is None:
        raise SpecError(name, sorted(problems, key=lambda p: p.line or 0))
    fields = {key: getattr(top, key) for key in SpecTop.model_fields if key != "checks"}
    spec = Spec.model_construct(**fields, checks=checks)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return SpecDocument(path=path, spec=spec, lines=lines, sha256=digest)


def validate_check(entry: dict[str, Any]) -> CheckSpec:
    """One check's parameters given from Python, validated as a spec entry is: a SpecError (a
    ValueError) with the same messages as for YAML (field, what is allowed, did-you-mean)."""
    problems: list[SpecProblem] = []
    checks = _validate_checks([entry], LineMap(), problems)
    if problems:
        for problem in problems:
            problem.line = None
        raise SpecError(PYTHON_CALL, problems)
    return checks[0]


def _validate_checks(entries: Any, lines: LineMap, problems: list[SpecProblem]) -> list[CheckSpec]:
    from robustness_checks.checks.registry import CHECK_TYPES, unknown_type_message

    if not isinstance(entries, list):
        return []
    known = ", ".join(sorted(CHECK_TYPES))
    checks: list[CheckSpec] = []
    first_line: dict[str, int | None] = {}
    for index, entry in enumerate(entries):
        where: Location = ("checks", index)
        if not isinstance(entry, dict):
            problems.append(
                _locate(where, "each check must be a mapping with name and type", lines)
            )
            continue
        check_name = entry.get("name") if isinstance(entry.get("name"), str) else None
        kind = entry.get("type")
        if kind is None:
            problems.append(
                _locate(
                    where,
                    f"check has no 'type'; known types: {known}",
                    lines,
                    check=check_name,
                    field="type",
                )
            )
            continue
        if not isinstance(kind, str) or kind not in CHECK_TYPES:
            problems.append(
                _locate(
                    (*where, "type"),
                    unknown_type_message(kind),
                    lines,
                    check=check_name,
                    field="type",
                )
            )
            continue
        params = CHECK_TYPES[kind].params
        try:
            check = params.model_validate(entry)
        except ValidationError as error:
            problems += _problems(error, params, where, lines, entry, check=check_name)
            continue
        if check.name in first_line:
            earlier = first_line[check.name]
            problems.append(
                _locate(
                    (*where, "name"),
                    f"duplicate check name {check.name!r} (first used on line "
                    f"{earlier}); check names must be unique within a spec",
                    lines,
                    check=check.name,
                    field="name",
                )
            )
            continue
        first_line[check.name] = lines.line((*where, "name"))
        checks.append(check)
    return checks


def _locate(
    location: Location,
    message: str,
    lines: LineMap,
    *,
    check: str | None = None,
    field: str | None = None,
) -> SpecProblem:
    if field is None:
        field = _dotted(location)
    if check is None and len(location) >= 2 and location[0] == "checks":
        check = f"#{location[1] + 1}" if isinstance(location[1], int) else None
    return SpecProblem(message, line=lines.line(location), check=check, field=field or None)


def _dotted(location: Location) -> str:
    if len(location) >= 2 and location[0] == "checks" and isinstance(location[1], int):
        location = location[2:]
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]" if parts else f"[{part}]"]
        else:
            parts.append(part)
    return ".".join(parts)


def _problems(
    error: ValidationError,
    model: type[BaseModel],
    prefix: Location,
    lines: LineMap,
    data: Any,
    *,
    check: str | None = None,
) -> list[SpecProblem]:
    return [
        _locate((*prefix, *location), message, lines, check=check)
        for location, message in located_messages(error, model, data)
    ]
