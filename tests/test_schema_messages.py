"""Every schema error is a sentence: the field as written, its line, what was found and allowed."""

from __future__ import annotations

import itertools
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.errors import SpecError, SpecProblem
from robustness_checks.spec.parse import parse_spec_text

ROOT = Path(__file__).parents[1]
HEADER = """\
model: {factory: robustness_checks.demo.model:digits_cnn}
data: {factory: robustness_checks.demo.digits:test_set}
"""
# Parts of pydantic's error locations and messages that mean nothing to a spec author.
INTERNAL = re.compile(
    r"constrained-|function-(after|before|plain|wrap)|\blist\[|\bdict\[|\btuple\[|literal\[|"
    r"tagged-union|nullable\[|lax-or-strict|json-or-python|is-instance|definition-ref|"
    r"Value error|model-fields|FieldInfo|Annotated|PydanticUndefined|\w+Spec\b|\w+Check\b|"
    r"instance of|\[type="
)
BAD_VALUES: list[Any] = ["bogus", "8/256x", -1, -0.5, 10**9, 1.5, True, {"x": 1}, [1, "x"], []]


def _documented_checks() -> dict[str, dict[str, Any]]:
    """The first example of each check type in the docs (a valid entry to spoil field by field)."""
    found: dict[str, dict[str, Any]] = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```ya?ml\n(.*?)```", page.read_text(), re.S):
            data = yaml.safe_load(block)
            entries = data.get("checks", []) if isinstance(data, dict) else data
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                    found.setdefault(entry["type"], entry)
    return found


EXAMPLES = _documented_checks()


def _blocks(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    """The models a field holds, each with whether it is a list of them."""
    found = []
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    for member in typing.get_args(annotation) if union else (annotation,):
        if typing.get_origin(member) is list:
            found += [(block, True) for block, _ in _blocks(typing.get_args(member)[0])]
        elif isinstance(member, type) and issubclass(member, BaseModel):
            found.append((member, False))
    return found


def _fields(model: type[BaseModel], prefix: tuple[str | int, ...]) -> Iterator[tuple]:
    for name, info in model.model_fields.items():
        if not prefix and name in ("name", "type"):
            continue
        path = (*prefix, name)
        yield path
        for block, listed in _blocks(info.annotation):
            yield from _fields(block, (*path, 0) if listed else path)


def _spoiled(entry: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    """A copy of `entry` with `value` at `path`, making the blocks on the way."""
    spoiled = yaml.safe_load(yaml.safe_dump(entry))
    here: Any = spoiled
    for part, after in itertools.pairwise(path):
        if isinstance(here, dict) and not isinstance(here.get(part), dict | list):
            here[part] = [{}] if isinstance(after, int) else {}
        if isinstance(here, list) and not here:
            here.append({})
        here = here[part]
    here[path[-1]] = value
    return spoiled


def _problems(entry: dict[str, Any]) -> list[SpecProblem]:
    text = HEADER + yaml.safe_dump({"checks": [entry]}, sort_keys=False)
    try:
        parse_spec_text(text, "spoiled.robustness.yaml")
    except SpecError as error:
        return error.problems
    return []


def _dotted(path: tuple) -> str:
    return re.sub(r"\.(\d+)", r"[\1]", ".".join(str(part) for part in path))


def test_every_check_type_has_a_documented_example() -> None:
    assert set(CHECK_TYPES) <= set(EXAMPLES)


@pytest.mark.parametrize("kind", sorted(CHECK_TYPES))
def test_no_message_for_any_bad_value_of_any_field_leaks_pydantic(kind: str) -> None:
    entry = {**EXAMPLES[kind], "name": "spoiled"}
    assert _problems(entry) == []
    spoiled_fields = 0
    for path in _fields(CHECK_TYPES[kind].params, ()):
        field = _dotted(path)
        for value in BAD_VALUES:
            problems = _problems(_spoiled(entry, path, value))
            for problem in problems:
                shown = problem.render("spoiled.robustness.yaml")
                assert not INTERNAL.search(f"{problem.message} {problem.field}"), shown
                assert problem.line is not None and problem.check == "spoiled", shown
                assert problem.message[:1].strip() and "\n" not in problem.message, shown
            at_field = [p for p in problems if p.field == field]
            assert len(at_field) <= 1, [p.render("") for p in at_field]  # one per field
            spoiled_fields += bool(problems)
    assert spoiled_fields > 10


def _message(check: str) -> list[str]:
    text = HEADER + "checks:\n" + "".join(f"  {line}\n" for line in check.splitlines())
    with pytest.raises(SpecError) as caught:
        parse_spec_text(text, "s.yaml")
    return [problem.render("s.yaml") for problem in caught.value.problems]


ADVERSARIAL = "- name: a\n  type: adversarial\n"
EXPECTED = [
    (
        ADVERSARIAL + "  attack: {eps: 8/256x}",
        "s.yaml:6, check 'a', field 'attack.eps': eps '8/256x' is not a number or a fraction "
        "like 8/255",
    ),
    (
        ADVERSARIAL + "  attack: {eps: -0.1}",
        "s.yaml:6, check 'a', field 'attack.eps': eps must be greater than or equal to 0 "
        "(got -0.1)",
    ),
    (
        ADVERSARIAL + "  attack: {eps: [8/255, x]}",
        "s.yaml:6, check 'a', field 'attack.eps[1]': eps 'x' is not a number or a fraction like "
        "8/255",
    ),
    (
        ADVERSARIAL + "  attack: {eps: {large: 1}}",
        "s.yaml:6, check 'a', field 'attack.eps': eps must be a number >= 0 or a fraction like "
        "8/255, or a list of them (got {'large': 1})",
    ),
    (
        ADVERSARIAL + "  attack: {eps: 0.1, targeted: most}",
        "s.yaml:6, check 'a', field 'attack.targeted': targeted must be an integer >= 0 or "
        "'least_likely' (got 'most')",
    ),
    (
        ADVERSARIAL + "  attack: {eps: 0.1, method: pgdd}",
        "s.yaml:6, check 'a', field 'attack.method': Input should be 'fgsm', 'pgd', 'apgd', "
        "'square', 'auto', 'uniform' or 'gaussian' (got 'pgdd'; did you mean 'pgd'?)",
    ),
    (
        ADVERSARIAL + "  attack: {eps: 0.1}\n  max_drop: high",
        "s.yaml:7, check 'a', field 'max_drop': max_drop must be a number >= 0 and <= 1, or a "
        "list of them (got 'high')",
    ),
    (
        ADVERSARIAL + "  attack: {eps: 0.1}\n  max_drop: [0.1, 2]",
        "s.yaml:7, check 'a', field 'max_drop[1]': Input should be less than or equal to 1 (got 2)",
    ),
    (
        ADVERSARIAL + "  attack: 0.1",
        "s.yaml:6, check 'a', field 'attack': attack must be a mapping with keys among method, "
        "norm, eps, steps, step_size, rel_step_size, restarts, random_start, early_stop, "
        "targeted, loss, queries, p_init, version, eot, draws, random_accuracy (got 0.1)",
    ),
    (
        "- {name: t, type: entropy_trend, eps: [0, 0.1], attack: {method: auto}}",
        "s.yaml:4, check 't', field 'attack.method': method 'auto' is not available in "
        "entropy_trend checks: it searches for the worst case at every eps, which takes "
        "minutes (use it in an adversarial check); choose one of fgsm, pgd, uniform, gaussian",
    ),
    (
        "- {name: n, type: noise, sigma: 0}",
        "s.yaml:4, check 'n', field 'sigma': sigma must be greater than 0 (got 0)",
    ),
    (
        "- {name: f, type: fuzz, perturbations: [{kind: linf, eps: 1/0}]}",
        "s.yaml:4, check 'f', field 'perturbations[0].eps': eps '1/0' divides by zero",
    ),
    (
        "- {name: f, type: fuzz, perturbations: [{kind: linf, eps: 0.1}], database: 5}",
        "s.yaml:4, check 'f', field 'database': database must be text or false (got 5)",
    ),
]


@pytest.mark.parametrize(("check", "expected"), EXPECTED, ids=[e for e, _ in EXPECTED])
def test_known_bad_values_get_these_sentences(check: str, expected: str) -> None:
    assert _message(check) == [expected]


def test_a_top_level_union_gets_one_sentence() -> None:
    text = HEADER + "channels_last: maybe\nchecks:\n  - {name: c, type: calibration}\n"
    with pytest.raises(SpecError) as caught:
        parse_spec_text(text, "s.yaml")
    assert [p.render("s.yaml") for p in caught.value.problems] == [
        "s.yaml:3, field 'channels_last': channels_last must be true, false or 'auto' (got 'maybe')"
    ]
