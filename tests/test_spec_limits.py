"""Hostile spec files: every one is a clean SpecError naming file and line, never a crash."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustness_checks.errors import SpecError
from robustness_checks.spec.parse import load_spec, parse_spec_text

GOOD = """\
model: {factory: robustness_checks.demo.model:digits_cnn}
data: {factory: robustness_checks.demo.digits:test_set}
checks:
  - {name: a, type: calibration, max: 0.1}
  - name: b
    type: adversarial
    attack: {method: pgd, eps: [0.05, 0.1], steps: 3}
    max_drop: 0.5
"""


def refuse(text: str | bytes, tmp_path: Path) -> str:
    path = tmp_path / "bad.robustness.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SpecError) as caught:
        load_spec(path, check_sources=False)
    return caught.value.render()


def test_alias_bomb_is_refused_in_under_a_second(tmp_path: Path) -> None:
    rows = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    start = time.perf_counter()
    message = refuse("\n".join(rows) + "\n", tmp_path)
    assert time.perf_counter() - start < 1.0
    assert "expands to more than 100,000 values" in message


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    assert "nested more than 64 levels" in refuse(GOOD + "seed: &r [*r]\n", tmp_path)
    assert "nested" in refuse("x: " + "[" * 900 + "]" * 900 + "\n", tmp_path)
    assert "nested" in refuse("x: " + "[" * 80 + "]" * 80 + "\n", tmp_path)


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    message = refuse(GOOD + "checks:\n  - {name: c, type: calibration}\n", tmp_path)
    assert "duplicate key 'checks' on lines 3 and 9" in message
    nested = GOOD.replace("max: 0.1}", "max: 0.2, max: 0.0001}")
    assert "duplicate key 'max' on lines 4 and 4" in refuse(nested, tmp_path)


def test_non_utf8_names_the_byte(tmp_path: Path) -> None:
    message = refuse(GOOD.encode() + b"seed: \xff\n", tmp_path)
    assert "not UTF-8" in message and "0xff" in message and ":9" in message


def test_huge_integers_and_non_string_types_are_spec_errors(tmp_path: Path) -> None:
    assert "more digits than Python converts" in refuse(GOOD + "seed: " + "9" * 5000, tmp_path)
    for bad in ("[calibration]", "{a: 1}", "3"):
        text = GOOD.replace("type: calibration", f"type: {bad}")
        assert "unknown check type" in refuse(text, tmp_path)


def test_validate_reports_every_file_and_fails_if_any_is_bad(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    (tmp_path / "rec.yaml").write_text(GOOD + "seed: &r [*r]\n")
    (tmp_path / "good2.yaml").write_text(GOOD)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustness_checks",
            "validate",
            "good.yaml",
            "bin.yaml",
            "rec.yaml",
            "good2.yaml",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "good.yaml: ok, 2 checks" in done.stdout and "good2.yaml: ok, 2 checks" in done.stdout
    assert "bin.yaml" in done.stderr and "rec.yaml" in done.stderr


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["inf", "-inf", ".nan", "pgd", "linf", "2", "cpu\n"]),
)


def _mutations(base: dict) -> st.SearchStrategy:
    """Specs derived from a valid one: a value replaced, a key dropped or one added."""
    paths = []

    def walk(node: object, path: tuple) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*path, index))

    walk(base, ())
    values = st.recursive(
        _SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        import copy

        spec = copy.deepcopy(base)
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths[1:]))
            parent = spec
            try:
                for part in path[:-1]:
                    parent = parent[part]
                action = draw(st.sampled_from(["replace", "drop", "add"]))
                if action == "replace":
                    parent[path[-1]] = draw(values)
                elif action == "drop" and isinstance(parent, dict):
                    parent.pop(path[-1], None)
                elif isinstance(parent, dict):
                    parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
            except (KeyError, IndexError, TypeError):
                continue
        return yaml.safe_dump(spec)

    return mutate()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(_mutations(yaml.safe_load(GOOD)))
def test_mutated_specs_are_valid_or_clean_errors(text: str) -> None:
    try:
        parse_spec_text(text, "fuzzed.robustness.yaml")
    except SpecError as error:
        assert error.problems and error.render().startswith("invalid robustness spec")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, type: calibration, bins: 1000000000000}", "less than or equal to 10000"),
        ("{name: a, type: calibration, max: .inf}", "finite number"),
        ("{name: a, type: noise, sigma: .inf}", "finite number"),
        ("{name: a, type: noise, sigma: .nan}", "finite number"),
        ("{name: a, type: adversarial, attack: {eps: .inf}}", "finite number"),
        (
            "{name: a, type: adversarial, attack: {eps: 0.1, steps: 1000000000000}}",
            "less than or equal to 100000",
        ),
        (
            "{name: a, type: adversarial, attack: {eps: 0.1, restarts: 1000000000000}}",
            "less than or equal to 1000",
        ),
        (
            "{name: a, type: adversarial, "
            "attack: {method: square, eps: 0.1, queries: 10000000000}}",
            "less than or equal to 1000000",
        ),
        (
            "{name: a, type: entropy_trend, eps: [0, 0.1], "
            "uncertainty: {method: mc_dropout, samples: 1000000000000}}",
            "less than or equal to 10000",
        ),
        (
            "{name: a, type: selective, coverage: 0.5, min_accuracy: 0.5, bootstrap: 10000000}",
            "less than or equal to 100000",
        ),
        (
            "{name: a, type: fuzz, perturbations: [{kind: linf, eps: 0.1}], "
            "max_examples: 1000000000000}",
            "less than or equal to 100000",
        ),
    ],
)
def test_values_that_would_fail_late_are_refused_at_parse_time(entry: str, message: str) -> None:
    text = GOOD.split("checks:")[0] + f"checks:\n  - {entry}\n"
    with pytest.raises(SpecError, match=message):
        parse_spec_text(text, "late.robustness.yaml")


def test_device_strings_are_matched_whole() -> None:
    for device in ['"cpu\\n"', "cuda:0x", '"cuda:1 "']:
        with pytest.raises(SpecError, match="is not one of auto, cpu"):
            parse_spec_text(GOOD + f"device: {device}\n", "d.robustness.yaml")
