"""The gate validity harness: for every registered check type (the docs' example installed),
a known regression fails every rule form, and an unchanged rerun fails none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.validity.__main__ import example_packages, installed
from robustness_checks.validity.gate_cases import gate_outcomes


@pytest.fixture(scope="module")
def registry() -> Iterator[dict]:
    with installed(example_packages()):
        yield dict(CHECK_TYPES)


def _type_names() -> list[str]:
    with installed(example_packages()):
        return sorted(CHECK_TYPES)


@pytest.mark.parametrize("name", _type_names())
def test_every_rule_form_catches_a_known_regression(
    name: str, registry: dict, one_thread: None
) -> None:
    entry = registry[name]
    cases = entry.gate_case_list()
    assert cases, f"check type {name!r} declares no gate cases"
    for case in cases:
        from robustness_checks.spec.parse import validate_check

        fields = {k: v for k, v in case.params.items() if k not in entry.data_fields}
        params = validate_check({"name": "c", "type": name, **fields})
        assert set(case.regressions) == entry.gated_metrics(params), "every gated metric"
        wrong = [o for o in gate_outcomes(case) if not o.right]
        assert not wrong, "\n".join(
            f"{o.regression}: {o.rule} {'failed' if o.failed else 'passed'} ({o.message})"
            for o in wrong
        )
