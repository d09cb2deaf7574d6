"""The gate validity harness: for every registered check type (the docs' example installed),
a known regression fails every rule form, and an unchanged rerun fails none."""

from __future__ import annotations

import pytest

from robustness_checks.validity.gate_cases import gate_outcomes
from robustness_checks.validity.packages import registered_types


@pytest.mark.parametrize("name", registered_types())
def test_every_rule_form_catches_a_known_regression(
    name: str, registry_with_examples: dict, one_thread: None
) -> None:
    entry = registry_with_examples[name]
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
