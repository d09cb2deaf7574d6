"""The ranking checks' validity cases: strict rarely passes and lenient rarely fails a population
exactly at the bound, and every rule fails a clearly violating one. The harness at reduced cost:
200 seeds at n = 20 and 200 (where the bootstrap intervals are least accurate), and the power at
n = 1000; docs/ood.md and docs/uncertainty.md give the full table (n = 1 to 1000)."""

from __future__ import annotations

from robustness_checks.validity.cases import measure, problems
from robustness_checks.validity.ranking import (
    failure_prediction_cases,
    ood_cases,
    selective_cases,
)


def test_ranking_decisions_keep_their_error_rates_and_power() -> None:
    cases = [*selective_cases(), *ood_cases(), *failure_prediction_cases()]
    assert [case.key for case in cases] == [
        "selective/accuracy_at_coverage",
        "selective/aurc",
        "ood/auroc",
        "ood/aupr",
        "ood/fpr95",
        "failure_prediction/aupr_error",
        "failure_prediction/auroc",
    ]
    found = [problem for case in cases for problem in problems(measure(case, sizes=(20, 200)))]
    assert found == []
