"""Every YAML and Python example in README.md and docs/ is validated or run, against the library."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
import yaml

import robustness_checks
from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.spec.parse import parse_spec_text
from robustness_checks.spec.schema import spec_json_schema

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)
INLINE_CALL = re.compile(r"`(robustness_checks\.\w+\(.*?\))`")
HEADER = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
data:
  factory: robustness_checks.demo.digits:test_set
"""


def _blocks(language: set[str]) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) in language:
                line = text[: match.start()].count("\n") + 1
                found.append((f"{page.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def _as_spec(block: str) -> str | None:
    """The YAML example as a whole spec, or None for YAML that is not part of a spec (CI)."""
    data = yaml.safe_load(block)
    if isinstance(data, dict) and "model" in data:
        return block
    if isinstance(data, list) and all(isinstance(c, dict) and "type" in c for c in data):
        return HEADER + "checks:\n" + "".join(f"  {line}\n" for line in block.splitlines())
    return None


SCHEMA = spec_json_schema([entry.params for entry in CHECK_TYPES.values()])
YAML_EXAMPLES = [(where, block) for where, block in _blocks({"yaml", "yml"}) if _as_spec(block)]
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))


def test_yaml_examples_are_found() -> None:
    assert len(YAML_EXAMPLES) >= 8


@pytest.mark.parametrize(("where", "block"), YAML_EXAMPLES, ids=[w for w, _ in YAML_EXAMPLES])
def test_yaml_example_is_a_valid_spec(where: str, block: str) -> None:
    spec = _as_spec(block)
    assert spec is not None
    parse_spec_text(spec, ROOT / "docs" / "example.robustness.yaml")
    jsonschema.validate(yaml.safe_load(spec), SCHEMA)


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_bundled_specs_satisfy_the_json_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMA)


def test_the_json_schema_accepts_every_norm_spelling_and_rejects_others() -> None:
    for norm in [2, "2", "inf", "linf", "l2", "L2"]:
        spec = yaml.safe_load(
            HEADER + "checks:\n  - {name: a, type: adversarial, "
            f"attack: {{eps: 0.1, norm: {json.dumps(norm)}}}}}\n"
        )
        jsonschema.validate(spec, SCHEMA)
    bad = yaml.safe_load(
        HEADER + "checks:\n  - {name: a, type: adversarial, attack: {eps: 0.1, norm: 3}}\n"
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


class _Benchmark:
    """pytest-benchmark's fixture, reduced to running the function once."""

    def pedantic(self, function: Any, args: tuple = (), kwargs: dict | None = None, **_: Any):
        return function(*args, **(kwargs or {}))

    def __call__(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)


class _Robustness:
    """The `robustness` fixture's surface: the library functions, results recorded in a list."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    def record(self, result: Any) -> Any:
        self.results.append(result)
        return result

    def __getattr__(self, name: str) -> Any:
        function = getattr(robustness_checks, name)
        return lambda *args, **kwargs: self.record(function(*args, **kwargs))


@pytest.fixture(scope="module")
def namespace() -> dict[str, Any]:
    torch.manual_seed(0)
    model = digits_cnn(pretrained=True)
    x, y = test_set(limit=60)
    values = {
        "robustness_checks": robustness_checks,
        "model": model,
        "candidate": model,
        "released": digits_cnn(pretrained=True, seed=1),
        "x": x,
        "y": y,
        "data": (x, y),
        "test_data": (x, y),
        "ood_x": torch.rand(60, 1, 8, 8),
        "benchmark": _Benchmark(),
        "robustness": _Robustness(),
    }
    return values


def _run_python(code: str, namespace: dict[str, Any]) -> None:
    scope = dict(namespace)
    exec(compile(code, "<example>", "exec"), scope)
    for name, value in list(scope.items()):
        if name.startswith("test_") and inspect.isfunction(value):
            value(*(scope[p] for p in inspect.signature(value).parameters))


PYTHON_EXAMPLES = _blocks({"python"})
INLINE_EXAMPLES = [
    (f"{page.relative_to(ROOT)}", match.group(1))
    for page in PAGES
    for match in INLINE_CALL.finditer(page.read_text())
]


@pytest.mark.parametrize(
    ("where", "code"),
    PYTHON_EXAMPLES + INLINE_EXAMPLES,
    ids=[w for w, _ in PYTHON_EXAMPLES + INLINE_EXAMPLES],
)
def test_python_example_runs(where: str, code: str, namespace: dict[str, Any]) -> None:
    if where.startswith("docs/extending.md"):
        # The example package is installed and run by tests/test_extending.py; here the page
        # must show its code as it is.
        package = (ROOT / "docs/examples/robustness_accuracy/robustness_accuracy.py").read_text()
        shown = [line.split("#")[0].rstrip() for line in code.splitlines()]
        written = {line.split("#")[0].rstrip() for line in package.splitlines()}
        assert "robustness_checks.accuracy(" in code or set(shown) <= written
        return
    if "conftest.py" in code or "@given" in code or "settings.register_profile" in code:
        compile(code, where, "exec")  # pytest / hypothesis configuration: it must parse
        return
    _run_python(code, namespace)
