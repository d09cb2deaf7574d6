"""Misclassification probability under Gaussian noise: Monte Carlo, splitting, importance."""

from robustness_checks.failure_probability.estimate import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    estimate_failure_probability,
)
from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.result import NoiseEstimate

__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "MarginOracle",
    "NoiseEstimate",
    "estimate_failure_probability",
]
