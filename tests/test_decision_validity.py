"""The decision validity harness: every registered check type (the docs' example installed),
every metric it can decide on and every rule, against populations of known value."""

from __future__ import annotations

import pytest

from robustness_checks.validity.cases import measure, problems
from robustness_checks.validity.packages import registered_types


@pytest.mark.parametrize("name", registered_types())
def test_every_deciding_metric_meets_the_error_rates(
    name: str, registry_with_examples: dict, one_thread: None
) -> None:
    entry = registry_with_examples[name]
    cases = entry.validity_cases()
    assert cases is not None, f"check type {name!r} declares no validity cases"
    assert sorted(case.metric for case in cases) == sorted(entry.deciding_metrics())
    found = []
    for case in cases:
        found += problems(measure(case))
    assert not found, "\n".join(found)
