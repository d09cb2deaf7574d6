"""The decision validity harness: every registered check type (the docs' example installed),
every metric it can decide on and every rule, against populations of known value."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.validity.__main__ import example_packages, installed
from robustness_checks.validity.cases import measure, problems


@pytest.fixture(scope="module")
def registry() -> Iterator[dict]:
    """The check types of this install and of the docs' example packages."""
    with installed(example_packages()):
        yield dict(CHECK_TYPES)


def _type_names() -> list[str]:
    with installed(example_packages()):
        return sorted(CHECK_TYPES)


@pytest.mark.parametrize("name", _type_names())
def test_every_deciding_metric_meets_the_error_rates(
    name: str, registry: dict, one_thread: None
) -> None:
    entry = registry[name]
    cases = entry.validity_cases()
    assert cases is not None, f"check type {name!r} declares no validity cases"
    assert sorted(case.metric for case in cases) == sorted(entry.deciding_metrics())
    found = []
    for case in cases:
        found += problems(measure(case))
    assert not found, "\n".join(found)
