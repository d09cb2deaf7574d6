"""Sequential adversarial checks stop once the verdict is known and reach the full run's."""

from __future__ import annotations

import pytest

import robustness_checks
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    return digits_cnn(pretrained=True), test_set()


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        ({"max_drop": [0.7, 0.9]}, "passed"),
        ({"max_drop": [0.01, 0.15]}, "failed"),
        ({"min_accuracy": [0.2, 0.05]}, "passed"),
    ],
)
@pytest.mark.parametrize("decision", ["strict", "lenient"])
def test_far_from_the_bound_uses_under_half_the_examples_and_agrees(
    setup, bound: dict, expected: str, decision: str
) -> None:  # type: ignore[no-untyped-def]
    model, (x, y) = setup
    data = x[:300], y[:300]
    options = {"eps": [0.05, 0.1], "steps": 10, "decision": decision, **bound}
    full = robustness_checks.adversarial(model, data, **options)
    quick = robustness_checks.adversarial(model, data, sequential=True, **options)
    assert full.outcome == quick.outcome == expected
    assert quick.details["examples_used"] < len(data[0]) / 2
    assert quick.evaluations < full.evaluations


def test_near_the_bound_it_keeps_going_and_is_reproducible(setup) -> None:  # type: ignore[no-untyped-def]
    model, data = setup
    full = robustness_checks.adversarial(model, data, eps=0.1, steps=10, max_drop=0.42)
    options = {"eps": 0.1, "steps": 10, "max_drop": 0.42, "sequential": True}
    first = robustness_checks.adversarial(model, data, decision="strict", **options)
    again = robustness_checks.adversarial(model, data, decision="strict", **options)
    assert first.details["examples_used"] == len(data[0])  # 0.422 against 0.42: never settled
    assert first.outcome == "inconclusive" and not first.passed
    assert (first.value, first.ci) == (again.value, again.ci)
    assert first.value == full.value  # every example used: the full run's estimate
