"""`validate --cost`: each check's most forward passes, checked against what the checks spend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import robustness_checks
from robustness_checks.cost import check_cost
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.spec.parse import validate_check

ROOT = Path(__file__).parents[1]


def _bounded(fields: dict) -> tuple[int, int]:
    """(the estimate, what the check spent, its randomness probe included)."""
    model, data = digits_cnn(pretrained=True), test_set(120)
    check = validate_check({"name": "c", **fields})
    result = robustness_checks.run_check(
        fields["type"], model, data, **{k: v for k, v in fields.items() if k != "type"}
    )
    spent = result.evaluations + result.details.model_randomness.forward_passes
    return check_cost(check, 120).passes or 0, spent


def test_estimates_bound_what_the_checks_spend() -> None:
    cases = [
        {"type": "calibration", "bootstrap": 10},
        {
            "type": "adversarial",
            "attack": {"method": "pgd", "eps": [0.05, 0.1], "steps": 5},
            "min_accuracy": 0.0,
        },
        {
            "type": "adversarial",
            "attack": {"method": "apgd", "eps": 0.1, "steps": 10},
            "min_accuracy": 0.9,
        },
        {
            "type": "selective",
            "coverage": 0.5,
            "uncertainty": {"method": "mc_dropout", "samples": 4},
            "bootstrap": 10,
        },
        {"type": "noise", "sigma": 0.3, "inputs": 2, "max_evaluations": 500, "estimator": "mc"},
    ]
    for fields in cases:
        estimate, spent = _bounded(fields)
        assert spent <= estimate, (fields, spent, estimate)
        assert estimate <= 3 * spent + 2000, (fields, spent, estimate)  # not wildly loose


def test_validate_cost_prints_every_check() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustness_checks",
            "validate",
            "--cost",
            str(ROOT / "specs" / "digits.robustness.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cost on 540 examples" in out
    assert "check 'pgd-linf' (adversarial): at most 43,264 forward passes" in out
    # auto's stages, each with its most passes per example and eps.
    stages = "(540 x (1 + 1 eps x (APGD-CE 101 + APGD-T 234 + Square 300))"
    assert f"{stages}; + 64 for the randomness probe)\n" in out
    from robustness_checks.spec.parse import load_spec

    spec = load_spec(ROOT / "specs" / "digits.robustness.yaml").spec
    assert all(f"check {check.name!r}" in out for check in spec.checks)
