"""JUnit `<property>` entries for a check's testcase."""

from __future__ import annotations

import math

from robustness_checks.results import CheckResult


def _rounded(rate: float | None) -> object:
    return "" if rate is None else round(rate, 1)


def junit_properties(result: CheckResult) -> list[tuple[str, object]]:
    """(name, value) pairs: metric, value, threshold, comparison, ci_low, ci_high, passed, then
    one `warning` per warning of the result."""
    ci_low, ci_high = result.ci if result.ci is not None else ("", "")
    warnings = [("warning", message) for message in result.warnings]
    value = result.value if math.isfinite(result.value) else ""  # an errored check measured none
    return [
        ("metric", result.metric),
        ("value", value),
        ("threshold", "" if result.threshold is None else result.threshold),
        ("comparison", result.comparison or ""),
        ("ci_low", ci_low),
        ("ci_high", ci_high),
        ("passed", str(result.passed).lower()),
        ("outcome", result.outcome),
        ("decision", result.decision),
        ("evaluations", result.evaluations),
        ("examples_per_second", _rounded(result.rate(result.examples))),
        ("evaluations_per_second", _rounded(result.rate(result.evaluations))),
        *warnings,
    ]
