"""Adversarial attacks on raw-input classifiers: FGSM, PGD and random baselines over many eps."""

from __future__ import annotations

from robustness_checks.attacks.api import METHODS, AttackMethod, run_attack
from robustness_checks.attacks.evaluation import eval_mode
from robustness_checks.attacks.expectation import Expectation, expected_correct
from robustness_checks.attacks.regions import NormName, parse_norm
from robustness_checks.attacks.result import AttackResult

__all__ = [
    "METHODS",
    "AttackMethod",
    "AttackResult",
    "Expectation",
    "NormName",
    "eval_mode",
    "expected_correct",
    "parse_norm",
    "run_attack",
]
