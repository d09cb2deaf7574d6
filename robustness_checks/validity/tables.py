"""The harness tables of the docs: decision validity and gate validity, every registered type."""

from __future__ import annotations

import sys
import time
from typing import Any


def decision_table(confidence: float = 0.95) -> list[str]:
    """The decision validity table: one row per check type, metric, n and population."""
    from robustness_checks.checks.registry import CHECK_TYPES
    from robustness_checks.validity.cases import limit, measure, problems

    lines = [
        "| type | metric | bound | n | population | point passes | strict passes | "
        "lenient passes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    found: list[str] = []
    for entry in CHECK_TYPES.values():
        for case in entry.validity_cases() or []:
            start = time.perf_counter()
            rates = measure(case, confidence=confidence)
            found += problems(rates, confidence)
            by_row: dict[tuple[int, str], dict[str, Any]] = {}
            for rate in rates:
                by_row.setdefault((rate.n, rate.truth), {})[rate.rule] = rate
            for (n, truth), rules in by_row.items():
                value = {"bound": case.bound, "violating": case.violating}.get(
                    truth, case.strict_at
                )
                cells = [
                    f"{rules[r].passed}/{rules[r].seeds}" for r in ("point", "strict", "lenient")
                ]
                lines.append(
                    f"| {case.check_type} | {case.metric} | {case.comparison} {case.bound:g} | "
                    f"{n} | {truth} ({value:g}) | " + " | ".join(cells) + " |"
                )
            print(f"{case.key}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    lines.append("")
    lines.append(
        f"Allowed: strict passes at the bound (or beyond it, for a witness rule) and lenient "
        f"failures at the bound in at most {limit(confidence, 200):.3f} of 200 seeds; every "
        f"rule fails the violating population in at least 80% of seeds."
    )
    lines.append("Problems: " + ("; ".join(found) if found else "none."))
    return lines


def gate_table() -> list[str]:
    """The gate validity table: one row per check type and run (the unchanged rerun, each
    regression), the rule forms tried on it and how many failed it as they should."""
    from robustness_checks.checks.registry import CHECK_TYPES
    from robustness_checks.validity.gate_cases import gate_outcomes

    lines = [
        "| type | run against the baseline | rule forms | failed the check | as they should |",
        "| --- | --- | --- | --- | --- |",
    ]
    wrong = []
    for entry in CHECK_TYPES.values():
        for case in entry.gate_case_list() or []:
            runs: dict[tuple[str, str], list[Any]] = {}
            for outcome in gate_outcomes(case):
                runs.setdefault((outcome.regression, outcome.metric), []).append(outcome)
            for (regression, metric), outcomes in runs.items():
                label = f"{regression} (worse {metric})" if metric else regression
                rules = ", ".join(f"`{o.rule}`" for o in outcomes)
                failed = sum(o.failed for o in outcomes)
                right = all(o.right for o in outcomes)
                lines.append(
                    f"| {case.check_type} | {label} | {rules} | {failed} of {len(outcomes)} | "
                    f"{'yes' if right else 'NO'} |"
                )
                wrong += [f"{o.case} {o.regression} {o.rule}" for o in outcomes if not o.right]
    lines.append("")
    lines.append("Wrong: " + ("; ".join(wrong) if wrong else "none."))
    return lines
