"""Shared result helpers: a bounded result, the data-in-bounds check and eps against bounds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from robustness_checks.checks.common.decision import decide, inconclusive_note
from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext
from robustness_checks.results import CheckResult, Comparison
from robustness_checks.spec.schema import CheckSpec


def bounded_result(
    context: CheckContext,
    params: CheckSpec,
    *,
    metric: str,
    value: float,
    ci: tuple[float, float] | None,
    maximum: float | None = None,
    minimum: float | None = None,
    examples: int = 0,
    details: dict[str, Any] | None = None,
    condition: str | None = None,
    bound_name: str | None = None,
) -> CheckResult:
    """A result deciding the value and its interval against the max or min bound under the
    context's decision rule (point, strict or lenient)."""
    comparison: Comparison | None = None
    threshold: float | None = None
    if maximum is not None:
        comparison, threshold = "<=", maximum
    elif minimum is not None:
        comparison, threshold = ">=", minimum
    outcome = decide(value, ci, comparison, threshold, context.decision)
    note = None
    warnings = []
    if outcome == "inconclusive" and ci is not None and threshold is not None:
        note = inconclusive_note(value, ci, threshold, examples, context.decision)
        if context.decision == "lenient":
            warnings.append(note)
    return CheckResult(
        check=params.name,
        type=params.type,
        metric=metric,
        value=float(value),
        comparison=comparison,
        threshold=threshold,
        ci=ci,
        confidence=context.confidence,
        outcome=outcome,
        decision=context.decision,
        examples=examples,
        details=details or {},
        condition=condition,
        bound_name=bound_name,
        note=note,
        warnings=warnings,
    )


def check_inside_bounds(context: CheckContext) -> None:
    """Raise unless every input lies within the spec's `bounds` (perturbations clip to them)."""
    if context.bounds is None or not len(context.examples):
        return
    lo, hi = context.bounds
    low, high = context.examples.value_range()
    if low < lo or high > hi:
        raise RobustnessError(
            f"the data lies in [{low:g}, {high:g}], outside the spec's bounds "
            f"[{lo:g}, {hi:g}]; set `bounds` to the raw input range (null for unbounded), or "
            "move normalisation into model.preprocess"
        )


# (spec field, eps values, norm "inf" or "2") of one perturbation budget of a check.
Budget = tuple[str, list[float], str]


def perturbation_budgets(params: CheckSpec) -> list[Budget]:
    """The eps budgets a check's parameters give: fuzz linf/l2 perturbations, entropy_trend's
    eps list (in its attack's norm) or an attack block's eps (adversarial)."""
    perturbations = getattr(params, "perturbations", None)
    if isinstance(perturbations, list):
        return [
            (f"perturbations[{i}].eps", [p.eps], "inf" if p.kind == "linf" else "2")
            for i, p in enumerate(perturbations)
            if getattr(p, "kind", None) in ("linf", "l2") and p.eps is not None
        ]
    attack = getattr(params, "attack", None)
    eps = getattr(params, "eps", None)
    if attack is not None and isinstance(eps, list):
        return [("eps", list(eps), attack.norm)]
    if attack is not None and attack.eps_list():
        return [("attack.eps", attack.eps_list(), attack.norm)]
    return []


def eps_beyond_bounds(
    budgets: Sequence[Budget], bounds: tuple[float, float] | None, dim: int | None
) -> list[str]:
    """A message for each budget whose largest eps reaches across the whole `bounds` box: for
    L-inf, eps >= hi - lo; for L2, eps >= (hi - lo) * sqrt(dim), the box's diagonal (only when
    the input size `dim` is known). From any clean input every input in the box is then in
    reach, so the check measures the model on arbitrary inputs, not its robustness."""
    if bounds is None:
        return []
    lo, hi = bounds
    width = hi - lo
    messages = []
    for field, values, norm in budgets:
        if norm == "inf":
            reach, what = width, f"the width {width:g} of bounds [{lo:g}, {hi:g}]"
            usual = "8/255 = 0.031 is the usual L-inf eps for 8-bit images in [0, 1]"
        elif dim is not None:
            reach = width * math.sqrt(dim)
            what = f"the L2 diagonal {reach:.4g} of bounds [{lo:g}, {hi:g}] over {dim:,} values"
            usual = "0.5 is the usual L2 eps for CIFAR-10 images in [0, 1]"
        else:
            continue
        over = [e for e in values if e >= reach]
        if over:
            shown = ", ".join(f"{e:g}" for e in over)
            messages.append(
                f"{field} {shown} is at least {what}: every input in the bounds is within reach "
                "of every clean input, so the check measures the model on arbitrary inputs, not "
                f"robustness; give eps in raw input units ({usual})"
            )
    return messages


def check_perturbation_bounds(context: CheckContext, params: CheckSpec) -> None:
    """For a check that perturbs inputs: the data must lie within `bounds` (an error), and an
    eps that reaches across the whole bounds box is a warning in the result."""
    check_inside_bounds(context)
    x = context.examples.x
    dim = int(x[0].numel()) if len(context.examples) else None
    for message in eps_beyond_bounds(perturbation_budgets(params), context.bounds, dim):
        if message not in context.warnings:
            context.warnings.append(message)
