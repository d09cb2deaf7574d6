"""`CheckResult`: one check's measured value, bound, interval, outcome and details."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from robustness_checks.formatting import format_number

if TYPE_CHECKING:
    from robustness_checks.details import Details, GatedValue
    from robustness_checks.fingerprints import Fingerprints

Comparison = Literal["<=", ">="]
Decision = Literal["point", "strict", "lenient"]
Outcome = Literal["passed", "failed", "inconclusive", "error", "skipped"]


def outcome_of(passed: bool) -> Outcome:
    """The outcome of a check that measured: passed or failed."""
    return "passed" if passed else "failed"


class ConfidenceInterval(NamedTuple):
    """Interval of a statistic, as scipy.stats results name it."""

    low: float
    high: float


@dataclass
class CheckResult:
    """A measured property: usable in a plain `assert` with a readable message."""

    check: str
    type: str
    metric: str
    value: float
    comparison: Comparison | None = None
    threshold: float | None = None
    ci: tuple[float, float] | None = None
    confidence: float = 0.95
    outcome: Outcome = "passed"
    decision: Decision = "point"  # the rule that turned value and interval into the outcome
    evaluations: int = 0
    seconds: float = 0.0
    examples: int = 0
    details: Details | dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    condition: str | None = None  # e.g. "under PGD-Linf eps=0.1", shown in the message
    bound_name: str | None = None  # the spec field of the bound, e.g. "max_drop"
    statement: str | None = None  # replaces the generic "metric = value ..." wording
    warnings: list[str] = field(default_factory=list)  # doubts about the measurement (faults)
    note: str | None = None  # appended to the message, e.g. what would settle an inconclusive
    fingerprints: Fingerprints | None = None  # what it was measured on, for baselines
    settings: dict[str, Any] | None = None  # the check's fields and run settings, for baselines
    rounds_seconds: list[float] | None = None  # each round's time under --robustness-rounds

    def __post_init__(self) -> None:
        if isinstance(self.details, dict):
            # A result made without details (or that measured nothing) has none of its type.
            measured = self.outcome not in ("error", "skipped") and self.details
            model = details_model(self.type) if measured else details_model("")
            self.details = model.model_validate(self.details)

    @property
    def passed(self) -> bool:
        """Whether the check passed; derived from `outcome` and `decision`, the one place: an
        inconclusive result passes under the lenient rule only."""
        return self.outcome == "passed" or (
            self.outcome == "inconclusive" and self.decision == "lenient"
        )

    def lower_is_better(self, metric: str) -> bool | None:
        """Whether a lower `metric` is better, as the result's check type declares (None for a
        metric it does not declare)."""
        from robustness_checks.checks.registry import lower_is_better

        return lower_is_better(self.type, metric)

    def gated_values(self) -> list[GatedValue]:
        """Every value a baseline comparison gates, as the check type's details declare them."""
        if self.outcome in ("error", "skipped"):
            return []
        return self.details.gated(self)  # type: ignore[union-attr]

    @property
    def statistic(self) -> float:
        """The measured value (scipy.stats naming)."""
        return self.value

    def confidence_interval(self) -> ConfidenceInterval | None:
        """The interval of the value at `confidence`, if one was computed."""
        return None if self.ci is None else ConfidenceInterval(*self.ci)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def message(self) -> str:
        """One line a person can act on, e.g. 'ece = 0.083 (95% CI ...) exceeds max 0.05 on ...'."""
        if self.outcome == "error":
            return f"{self.check}: error: {self.error}"
        if self.statement:
            return self.statement + (f" on {self.examples} examples" if self.examples else "")
        text = f"{self.metric} = {format_number(self.value)}"
        if self.ci is not None:
            level = f"{100 * self.confidence:g}%"
            text += f" ({level} CI {format_number(self.ci[0])} to {format_number(self.ci[1])})"
        if self.condition:
            text += f" {self.condition}"
        if self.comparison is not None and self.threshold is not None:
            upper = self.comparison == "<="
            bound = self.bound_name or ("max" if upper else "min")
            if self.outcome == "inconclusive":
                verb = "is not settled against"
            elif upper:
                verb = "is within" if self.outcome == "passed" else "exceeds"
            else:
                verb = "meets" if self.outcome == "passed" else "is below"
            text += f" {verb} {bound} {format_number(self.threshold)}"
        if self.examples:
            text += f" on {self.examples} examples"
        if self.decision != "point":
            text += f" [decision {self.decision}]"
        if self.note:
            text += f"; {self.note}"
        return text

    def rate(self, count: int) -> float | None:
        """`count` per second of this check's wall time (None before it was timed)."""
        return count / self.seconds if self.seconds > 0 else None

    def __repr__(self) -> str:
        status = "passed" if self.passed else self.outcome
        if self.warnings:
            status += f" with {len(self.warnings)} warning{'s' if len(self.warnings) > 1 else ''}"
        return f"<CheckResult {self.check!r} {status}: {self.message}>"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the results file (schema_version 1)."""
        data: dict[str, Any] = {
            "check": self.check,
            "type": self.type,
            "metric": self.metric,
            "value": self.value,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "ci": None if self.ci is None else [self.ci[0], self.ci[1]],
            "confidence": self.confidence,
            "decision": self.decision,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "details": self.details.as_json(),  # type: ignore[union-attr]
            "warnings": list(self.warnings),
            "passed": self.passed,
            "outcome": self.outcome,
        }
        if self.error is not None:
            data["error"] = self.error
        data["examples"] = self.examples
        data["examples_per_second"] = self.rate(self.examples)
        data["evaluations_per_second"] = self.rate(self.evaluations)
        data["message"] = self.message
        data["gated"] = [
            {"label": value.label, **value.model_dump(mode="json")} for value in self.gated_values()
        ]
        if self.fingerprints is not None:
            data["fingerprints"] = self.fingerprints.as_json()
        if self.settings is not None:
            data["settings"] = self.settings
        if self.rounds_seconds is not None:
            data["rounds_seconds"] = list(self.rounds_seconds)
        return _finite(data)


def record_result(record: dict[str, Any]) -> CheckResult | None:
    """The result a results-file record holds, details typed by its check type's model; None
    when the record cannot be read so (another version's details, an unknown type)."""
    ci = record.get("ci")
    value = record.get("value")
    try:
        return CheckResult(
            check=str(record.get("check") or ""),
            type=str(record.get("type") or ""),
            metric=str(record.get("metric") or ""),
            value=float("nan") if value is None else float(value),
            comparison=record.get("comparison"),
            threshold=record.get("threshold"),
            ci=None if not ci or None in ci else (float(ci[0]), float(ci[1])),
            confidence=float(record.get("confidence") or 0.95),
            outcome=record.get("outcome") or "error",
            decision=record.get("decision") or "point",
            evaluations=int(record.get("evaluations") or 0),
            seconds=float(record.get("seconds") or 0.0),
            examples=int(record.get("examples") or 0),
            details=dict(record.get("details") or {}),
            error=record.get("error"),
            warnings=list(record.get("warnings") or []),
        )
    except (TypeError, ValueError):
        return None


def details_model(type_name: str) -> type[Details]:
    """The details model the check type `type_name` declares (the free-form base when unknown)."""
    from robustness_checks.checks.registry import CHECK_TYPES
    from robustness_checks.details import Details

    entry = CHECK_TYPES.get(type_name)
    return Details if entry is None else entry.details


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
