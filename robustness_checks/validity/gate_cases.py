"""Gate validity: a released model, known regressions of it, and every rule form that must fail."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

CHECK_NAME = "gated-check"


@dataclass(frozen=True)
class Regression:
    """A known way to make a model worse at one gated metric."""

    name: str  # e.g. "class 3 biased by +10"
    worsen: Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class GateCase:
    """A check of one type on a released model and its data, and per gated metric a regression
    that makes that metric worse by more than `allowed`."""

    check_type: str
    params: dict[str, Any]
    released: Callable[[], nn.Module]
    data: Callable[[], Any]
    regressions: dict[str, Regression]
    allowed: float = 0.01  # the x of the absolute rules (`KEY:+x`)
    options: dict[str, Any] = field(default_factory=dict)  # run_check's run options

    @property
    def key(self) -> str:
        return self.check_type


@dataclass(frozen=True)
class GateOutcome:
    """Whether one rule form failed one run against the baseline, and whether it should."""

    case: str
    metric: str  # the gated metric the regression worsens ("" for the unchanged rerun)
    regression: str
    rule: str
    failed: bool
    expected: bool
    message: str = ""

    @property
    def right(self) -> bool:
        return self.failed == self.expected


def rule_forms(case: GateCase, metric: str) -> list[str]:
    """Every rule form that must catch a regression of `metric`: by type, check name, a name
    pattern, the metric, *, and significance."""
    a = f"+{case.allowed:g}"
    return [
        f"{case.check_type}:{a}",
        f"{CHECK_NAME}:{a}",
        "gated-*:" + a,
        f"{metric}:{a}",
        f"*:{a}",
        f"{case.check_type}:significant",
    ]


def gate_outcomes(case: GateCase) -> list[GateOutcome]:
    """Save a baseline of the released model, rerun it unchanged (no rule may fail), run each
    regression (every rule form must fail), and a slower run and a dearer one (the cost rules
    must fail)."""
    released = case.released()
    data = case.data()
    before = _record(case, released, data)
    outcomes = []
    unchanged = _record(case, released, data)
    forms = sorted({form for metric in case.regressions for form in rule_forms(case, metric)})
    for form in [*forms, "seconds:x2", "evaluations:x1.0"]:
        outcomes.append(_judge(case, before, unchanged, "", "unchanged rerun", form, False))
    for metric, regression in case.regressions.items():
        after = _record(case, regression.worsen(released), data)
        for form in rule_forms(case, metric):
            outcomes.append(_judge(case, before, after, metric, regression.name, form, True))
    slow = _record(case, Slowed(released, max(1.2, 3 * before["seconds"])), data)
    outcomes.append(_judge(case, before, slow, "seconds", "slower model", "seconds:x2", True))
    cheaper = {**before, "evaluations": max(1, before["evaluations"] // 2)}
    outcomes.append(
        _judge(
            case,
            cheaper,
            unchanged,
            "evaluations",
            "twice the evaluations",
            "evaluations:x1.5",
            True,
        )
    )
    return outcomes


def _record(case: GateCase, model: nn.Module, data: Any) -> dict[str, Any]:
    """The results record of one run, made as in a pytest session (with the fingerprints that
    baselines compare), whether or not one is running."""
    from robustness_checks.api import run_check
    from robustness_checks.settings import SettingsLayer, session_layers

    options = {"device": "cpu", "seed": 0, **case.options}
    with session_layers(SettingsLayer(), SettingsLayer()):
        result = run_check(case.check_type, model, data, name=CHECK_NAME, **options, **case.params)
    return {"nodeid": f"gate::{CHECK_NAME}", "spec": "gate", **result.to_dict()}


def _judge(
    case: GateCase,
    before: dict[str, Any],
    after: dict[str, Any],
    metric: str,
    regression: str,
    form: str,
    expected: bool,
) -> GateOutcome:
    from robustness_checks.gating.baseline import parse_rule
    from robustness_checks.gating.compare import Comparator

    comparator = Comparator({"baseline": "released", "results": [before]}, [parse_rule(form)])
    found = comparator.judge(after)
    problem = "; ".join(found.reasons) if found.status != "compared" else ""
    return GateOutcome(
        case=case.key,
        metric=metric,
        regression=regression,
        rule=form,
        failed=bool(found.regressions),
        expected=expected,
        message=problem or "; ".join(found.regressions),
    )


class Slowed(nn.Module):
    """The model, `delay` seconds slower on its first forward pass."""

    def __init__(self, model: nn.Module, delay: float):
        super().__init__()
        self.model = model
        self.delay = delay
        self.waited = False

    def forward(self, x: Any) -> Any:
        if not self.waited:
            self.waited = True
            time.sleep(self.delay)
        return self.model(x)
