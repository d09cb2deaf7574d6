"""robustness_checks: test PyTorch classifiers the way you test code."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Attributes are imported on first use so that loading the pytest plugin does not import torch.
_EXPORTS = {
    "adversarial": "robustness_checks.api",
    "calibration": "robustness_checks.api",
    "compare_accuracy": "robustness_checks.gating.release",
    "entropy_trend": "robustness_checks.api",
    "failure_prediction": "robustness_checks.api",
    "noise": "robustness_checks.api",
    "fuzz": "robustness_checks.api",
    "ood": "robustness_checks.api",
    "selective": "robustness_checks.api",
    "run_check": "robustness_checks.api",
    "CHECK_TYPES": "robustness_checks.checks.registry",
    "CheckResult": "robustness_checks.results",
    "ConfidenceInterval": "robustness_checks.results",
    "Examples": "robustness_checks.examples",
    "as_examples": "robustness_checks.examples",
    "LoadError": "robustness_checks.errors",
    "ModelOutputError": "robustness_checks.errors",
    "RobustnessError": "robustness_checks.errors",
    "RobustnessWarning": "robustness_checks.errors",
    "SpecError": "robustness_checks.errors",
    "load_spec": "robustness_checks.spec.parse",
}

__all__ = [
    "CHECK_TYPES",
    "CheckResult",
    "ConfidenceInterval",
    "Examples",
    "LoadError",
    "ModelOutputError",
    "RobustnessError",
    "RobustnessWarning",
    "SpecError",
    "__version__",
    "adversarial",
    "as_examples",
    "calibration",
    "compare_accuracy",
    "entropy_trend",
    "failure_prediction",
    "fuzz",
    "load_spec",
    "noise",
    "ood",
    "run_check",
    "selective",
]

if TYPE_CHECKING:
    from robustness_checks.api import (
        adversarial,
        calibration,
        entropy_trend,
        failure_prediction,
        fuzz,
        noise,
        ood,
        run_check,
        selective,
    )
    from robustness_checks.checks.registry import CHECK_TYPES
    from robustness_checks.errors import (
        LoadError,
        ModelOutputError,
        RobustnessError,
        RobustnessWarning,
        SpecError,
    )
    from robustness_checks.examples import Examples, as_examples
    from robustness_checks.gating.release import compare_accuracy
    from robustness_checks.results import CheckResult, ConfidenceInterval
    from robustness_checks.spec.parse import load_spec


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        if name.startswith("_"):
            raise AttributeError(f"module 'robustness_checks' has no attribute {name!r}")
        # A check type that an installed package registers has its function too.
        try:
            return getattr(importlib.import_module("robustness_checks.api"), name)
        except AttributeError:
            raise AttributeError(f"module 'robustness_checks' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
