"""Counts to verdict for the `adversarial` check: intervals per eps, the deciding bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robustness_checks.checks.adversarial_details import AdversarialDetails, BoundDecision, EpsRow
from robustness_checks.checks.common.decision import Judging, decide, inconclusive_note
from robustness_checks.details import ExampleRow
from robustness_checks.metrics.bounded_mean import bounded_mean_interval, signed_mean_interval
from robustness_checks.metrics.intervals import clopper_pearson
from robustness_checks.results import CheckResult, format_number

if TYPE_CHECKING:
    from robustness_checks.checks.adversarial import AdversarialCheck
    from robustness_checks.checks.common.attack_spec import AttackSpec

_RANK = {"failed": 0, "inconclusive": 1, "passed": 2}


@dataclass
class Tally:
    """Counts over all examples: clean and robust correct per eps, and attack passes.

    For a random model counted by expected accuracy the counts are sums of per-example shares
    of correct draws, and `shares` holds them (clean (n,), robust (n, eps)) for the intervals.
    """

    examples: int
    clean_correct: float
    robust_correct: list[float]
    forward_passes: int = 0
    backward_passes: int = 0
    zero_gradients: int = 0
    gradient_examples: int = 0
    shares: tuple[np.ndarray, np.ndarray] | None = None

    def intervals(self, index: int, level: float) -> tuple[tuple[float, float], ...]:
        """Intervals of the adversarial accuracy and of the accuracy drop at eps `index`:
        exact binomial for counts, betting for shares (examples and draws at once)."""
        n, correct = self.examples, self.robust_correct[index]
        if self.shares is None:
            return (
                clopper_pearson(int(correct), n, level),
                clopper_pearson(int(self.clean_correct - correct), n, level),
            )
        clean, robust = self.shares
        return (
            bounded_mean_interval(robust[:, index], level),
            signed_mean_interval(clean - robust[:, index], level),
        )

    def clean_interval(self, level: float) -> tuple[float, float]:
        if self.shares is None:
            return clopper_pearson(int(self.clean_correct), self.examples, level)
        return bounded_mean_interval(self.shares[0], level)


def decide_counts(
    judging: Judging,
    params: AdversarialCheck,
    eps: list[float],
    tally: Tally,
    failures: list[dict[str, Any]],
    settled: dict[tuple[int, str], tuple[str, tuple[float, float]]] | None = None,
    attack: AttackSpec | None = None,
) -> CheckResult:
    attack = attack or params.attack
    n = tally.examples
    clean = tally.clean_correct
    robust = tally.robust_correct
    level = judging.confidence
    rows = []
    for index, (e, correct, max_drop, min_accuracy) in enumerate(
        zip(eps, robust, params.per_eps("max_drop"), params.per_eps("min_accuracy"), strict=True)
    ):
        accuracy_ci, drop_ci = tally.intervals(index, level)
        row = {
            "eps": e,
            "adversarial_accuracy": correct / n,
            "adversarial_accuracy_ci": list(accuracy_ci),
            "accuracy_drop": (clean - correct) / n,
            "accuracy_drop_ci": list(drop_ci),
            "checks": [],
        }
        if max_drop is not None:
            row["checks"].append(("accuracy_drop", "<=", max_drop, "max_drop"))
        if min_accuracy is not None:
            row["checks"].append(("adversarial_accuracy", ">=", min_accuracy, "min_accuracy"))
        rows.append(row)
    decisions = [
        {
            "eps_index": index,
            "eps": row["eps"],
            "metric": metric,
            "value": row[metric],
            "ci": row[f"{metric}_ci"],
            "comparison": comparison,
            "threshold": threshold,
            "bound_name": name,
            "slack": threshold - row[metric] if comparison == "<=" else row[metric] - threshold,
        }
        for index, row in enumerate(rows)
        for metric, comparison, threshold, name in row["checks"]
    ]
    for decision in decisions:
        if settled is not None:
            # Sequential: the anytime-valid test's verdict, and its interval.
            found, interval = settled[(decision["eps_index"], decision["metric"])]
            decision["ci"] = list(interval)
            if found != "open":
                decision["outcome"] = found
                decision["passed"] = found == "passed"
                continue
        decision["outcome"] = decide(
            decision["value"],
            tuple(decision["ci"]),
            decision["comparison"],
            decision["threshold"],
            judging.decision,
        )
        decision["passed"] = decision["outcome"] == "passed"
    if decisions:
        # The worst bound decides: failed, then inconclusive, then the least slack.
        deciding = min(decisions, key=lambda d: (_RANK[d["outcome"]], d["slack"]))
    else:
        last = rows[-1]
        deciding = {
            "eps": last["eps"],
            "metric": "adversarial_accuracy",
            "value": last["adversarial_accuracy"],
            "ci": last["adversarial_accuracy_ci"],
            "comparison": None,
            "threshold": None,
            "bound_name": None,
            "passed": True,
            "outcome": "passed",
        }
    outcome = deciding["outcome"]
    condition = f"under {attack.label()} eps={format_number(deciding['eps'])}"
    also = sorted({d["eps"] for d in decisions if d["outcome"] == "failed"} - {deciding["eps"]})
    if also:
        condition += f" (also fails at eps={', '.join(format_number(e) for e in also)})"
    for row in rows:
        del row["checks"]
    single = len(eps) == 1
    details = AdversarialDetails(
        attack=attack.describe(),
        eps=eps,
        clean_accuracy=clean / n,
        clean_accuracy_ci=tally.clean_interval(level),
        adversarial_accuracy=rows[0]["adversarial_accuracy"]
        if single
        else [row["adversarial_accuracy"] for row in rows],
        accuracy_drop=rows[0]["accuracy_drop"]
        if single
        else [row["accuracy_drop"] for row in rows],
        per_eps=[EpsRow(**row) for row in rows],
        decisions=[
            BoundDecision(**{k: v for k, v in d.items() if k not in ("slack", "eps_index")})
            for d in decisions
        ],
        forward_passes=tally.forward_passes,
        backward_passes=tally.backward_passes,
        failing_examples=[ExampleRow(**row) for row in failures],
    )
    note = None
    if outcome == "inconclusive":
        note = inconclusive_note(
            deciding["value"], tuple(deciding["ci"]), deciding["threshold"], n, judging.decision
        )
    return CheckResult(
        check=params.name,
        type=params.type,
        metric=deciding["metric"],
        value=float(deciding["value"]),
        comparison=deciding["comparison"],
        threshold=deciding["threshold"],
        ci=tuple(deciding["ci"]),
        confidence=level,
        outcome=outcome,
        decision=judging.decision,
        examples=n,
        details=details,
        condition=condition,
        bound_name=deciding["bound_name"],
        note=note,
        warnings=[note] if note and judging.decision == "lenient" else [],
    )
