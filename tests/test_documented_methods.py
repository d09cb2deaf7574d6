"""Each check type's attack and uncertainty methods are the ones its docs list, and no others."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.errors import SpecError
from robustness_checks.spec.parse import validate_check

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def method_blocks(params: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    """{block field: the methods its `method` Literal allows} for the check's blocks (attack,
    uncertainty) that choose a method: the list the schema enforces."""
    found = {}
    for name, info in params.model_fields.items():
        annotation = info.annotation
        members = (
            typing.get_args(annotation)
            if typing.get_origin(annotation) in (typing.Union, types.UnionType)
            else (annotation,)
        )
        for member in members:
            if isinstance(member, type) and issubclass(member, BaseModel):
                method = member.model_fields.get("method")
                if method is not None and typing.get_origin(method.annotation) is typing.Literal:
                    found[name] = typing.get_args(method.annotation)
    return found


CASES = [
    (kind, block, methods)
    for kind, entry in sorted(CHECK_TYPES.items())
    for block, methods in method_blocks(entry.params).items()
]


def _check_entries(block: str) -> list[str]:
    """The text of each check entry ('- name: ...' item at the outermost list level) in a YAML
    example; an example with no list is one entry."""
    lines = block.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"\s*- ", line)]
    if not starts:
        return [block]
    indent = min(len(lines[i]) - len(lines[i].lstrip()) for i in starts)
    cuts = [i for i in starts if len(lines[i]) - len(lines[i].lstrip()) == indent]
    return ["\n".join(lines[a:b]) for a, b in zip(cuts, [*cuts[1:], len(lines)], strict=True)]


def documented_lists(kind: str, block: str) -> list[tuple[str, list[str]]]:
    """(where, methods) for every YAML example of a `kind` check whose `block` method line has a
    comment listing the choices, the written one among them: `attack: {method: fgsm}  # fgsm |
    pgd` or, in a block written over several lines, `method: pgd  # fgsm | pgd | ...`. A list
    without the written method is about another key (`{method: auto, version: standard}  #
    standard | fast`)."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in re.finditer(r"```ya?ml\n(.*?)```", text, re.S):
            where = f"{page.name}:{text[: match.start()].count(chr(10)) + 1}"
            for entry in _check_entries(match.group(1)):
                if re.search(rf"\btype:\s*{kind}\b", entry):
                    found += [(where, listed) for listed in _method_comments(entry, block)]
    return found


def _method_comments(entry: str, block: str) -> list[list[str]]:
    found = []
    opened: int | None = None  # the indentation of `block:` written on a line of its own
    for line in entry.splitlines():
        indent = len(line) - len(line.lstrip(" -"))
        if opened is not None and line.strip() and indent <= opened:
            opened = None
        if re.match(rf"\s*(- )?{block}:\s*(#.*)?$", line):
            opened = indent
            continue
        inline = re.search(rf"\b{block}:\s*\{{\s*method:", line)
        nested = opened is not None and re.match(r"\s*method:", line)
        if (inline or nested) and "#" in line:
            written = re.search(r"\bmethod:\s*(\w+)", line)
            choices = [part.strip().split(" ")[0] for part in line.split("#", 1)[1].split("|")]
            if written and len(choices) > 1 and written.group(1) in choices:
                found.append(choices)
    return found


def test_the_blocks_that_choose_a_method_are_found() -> None:
    blocks = {(kind, block) for kind, block, _ in CASES}
    assert {("adversarial", "attack"), ("entropy_trend", "attack")} <= blocks
    assert {("ood", "uncertainty"), ("entropy_trend", "uncertainty")} <= blocks


@pytest.mark.parametrize(("kind", "block", "methods"), CASES, ids=[f"{k}.{b}" for k, b, _ in CASES])
def test_the_docs_list_exactly_the_methods_the_schema_accepts(
    kind: str, block: str, methods: tuple[str, ...]
) -> None:
    documented = documented_lists(kind, block)
    assert documented, f"no example of a {kind} check lists its {block} methods in a comment"
    for where, listed in documented:
        assert listed == list(methods), where


@pytest.mark.parametrize(("kind", "block", "methods"), CASES, ids=[f"{k}.{b}" for k, b, _ in CASES])
def test_a_method_outside_the_list_is_refused_with_the_list(
    kind: str, block: str, methods: tuple[str, ...]
) -> None:
    entry: dict[str, Any] = {"name": "c", "type": kind, block: {"method": "not_a_method"}}
    with pytest.raises(SpecError) as caught:
        validate_check(entry)
    messages = [p.message for p in caught.value.problems if p.field == f"{block}.method"]
    assert len(messages) == 1
    assert all(f"'{method}'" in messages[0] for method in methods), messages[0]


def test_entropy_trend_refuses_the_long_attack_searches_at_load_time() -> None:
    for method in ("apgd", "square", "auto"):
        entry = {
            "name": "c",
            "type": "entropy_trend",
            "eps": [0, 0.1],
            "attack": {"method": method},
        }
        with pytest.raises(SpecError, match=f"method '{method}' is not available in entropy_trend"):
            validate_check(entry)
    for method in method_blocks(CHECK_TYPES["entropy_trend"].params)["attack"]:
        entry = {
            "name": "c",
            "type": "entropy_trend",
            "eps": [0, 0.1],
            "attack": {"method": method},
        }
        assert validate_check(entry).attack.method == method  # type: ignore[attr-defined]
