"""Gradient masking evidence for the adversarial check: dead gradients and a Square probe."""

from __future__ import annotations

from typing import Any

import torch

from robustness_checks.checks.common.attack_spec import GRADIENT_METHODS, AttackSpec
from robustness_checks.execution.diagnostics import MASKING_SHARE
from robustness_checks.results import CheckResult, format_number

# Masking is suspected when Square breaks more than max(MIN_BROKEN, BROKEN_SHARE * probed) of
# the probed examples and that implies robust accuracy overstated by at least MIN_OVERSTATEMENT
# (AutoAttack found 2.5 to 5 points for sound defences, 20 to 70 for masked ones).
MIN_BROKEN = 2
BROKEN_SHARE = 0.1
MIN_OVERSTATEMENT = 0.05


def suspected(broken: int, probed: int, robust_share: float) -> bool:
    """Whether `broken` of `probed` robust examples falling to Square suggests masking, when
    `robust_share` of all examples were robust before it."""
    if probed == 0:
        return False
    many = broken > max(MIN_BROKEN, BROKEN_SHARE * probed)
    return many and robust_share * broken / probed >= MIN_OVERSTATEMENT


def evidence(
    attack: AttackSpec,
    zero: int,
    gradient_examples: int,
    probe: dict[str, Any] | None,
    robust_share: float,
    misclassified: int = 0,
) -> dict[str, str]:
    """The findings that point to gradient masking, by kind ('zero_gradients', 'probe').

    Dead gradients count when, even if every one of the `misclassified` clean examples had one
    (the DLR loss is constant where the label is the third logit), at least MASKING_SHARE of
    the examples that needed moving had one too."""
    found = {}
    needed = max(zero - misclassified, 0)
    if attack.method in GRADIENT_METHODS and needed and needed >= MASKING_SHARE * gradient_examples:
        found["zero_gradients"] = (
            f"the input gradient was zero (or not finite) for {zero} of {gradient_examples} "
            f"examples at {attack.label()}'s first step"
        )
    if probe is not None and probe.get("suspected"):
        found["probe"] = (
            f"Square broke {probe['broken']} of {probe['probed']} examples that "
            f"{attack.label()} left robust at eps={format_number(probe['eps'])} (a "
            f"{probe['steps']}-step APGD-CE broke {probe['gradient_broken']} of them first)"
        )
    return found


def apply_masking(
    result: CheckResult,
    attack: AttackSpec,
    found: dict[str, str],
    action: str,
    accuracy: float,
) -> None:
    """On masking evidence, fail a passing result (action 'fail'); otherwise warn, where the
    zero-gradient diagnostic has not already warned (see `execution.diagnostics`)."""
    if not found:
        return
    message = (
        f"gradient masking suspected: {'; '.join(found.values())}; robust accuracy under "
        f"{attack.label()} ({format_number(accuracy)}) is not trustworthy: use method: auto"
    )
    if action == "fail" and result.outcome in ("passed", "inconclusive"):
        measured = result.message.removesuffix(f" on {result.examples} examples")
        result.outcome = "failed"
        result.note = None
        result.statement = f"{message}; measured {measured}"
    elif "probe" in found:
        result.warnings.append(message)


def judge_masking(
    result: CheckResult,
    attack: AttackSpec,
    action: str,
    probe: dict[str, Any] | None,
    *,
    zero: int,
    gradient_examples: int,
    misclassified: int,
    robust_share: float,
) -> None:
    """Record the probe and the evidence in `result.details` and act on the evidence."""
    if probe is not None:
        result.details.masking_probe = probe
    found = evidence(attack, zero, gradient_examples, probe, robust_share, misclassified)
    result.details.gradient_masking = {"action": action, "evidence": list(found.values())}
    apply_masking(result, attack, found, action, robust_share)


def broken_by(eps: list[float], names: list[str], broken: torch.Tensor) -> list[dict[str, Any]]:
    """Per eps, how many examples each auto stage broke; `broken` is (batches, stages, eps)."""
    totals = broken.sum(dim=0).tolist()
    return [
        {"eps": e, **{name: totals[s][k] for s, name in enumerate(names)}}
        for k, e in enumerate(eps)
    ]


def square_beats_gradients(rows: list[dict[str, Any]], robust: int, examples: int) -> str | None:
    """AutoAttack's flag: a warning when Square broke many of the examples that the gradient
    stages left robust at the largest eps (`robust` examples survived every stage)."""
    last = rows[-1]
    broken = int(last.get("Square", 0))
    probed = robust + broken
    if not suspected(broken, probed, probed / max(examples, 1)):
        return None
    return (
        f"gradient masking suspected: Square broke {broken} of {probed} examples that the "
        f"gradient stages of auto left robust at eps={format_number(last['eps'])}; the result "
        "includes Square, but a model that masks its gradients may be less robust still"
    )


def add_stages(
    result: CheckResult,
    eps: list[float],
    stages: list[list[tuple[str, int, int]]],
    broken: torch.Tensor,
    robust: int,
) -> None:
    """details.broken_by (per eps, the examples each auto stage broke), details.stages (passes
    per stage, over the batches in `stages`) and AutoAttack's masking flag as a warning."""
    names = [name for name, _, _ in stages[0]]
    rows = broken_by(eps, names, broken)
    result.details.broken_by = rows
    result.details.stages = [
        {
            "name": name,
            "evaluations": sum(batch[k][1] for batch in stages),
            "backward_passes": sum(batch[k][2] for batch in stages),
        }
        for k, name in enumerate(names)
    ]
    warning = square_beats_gradients(rows, robust, result.examples)
    if warning:
        result.warnings.append(warning)
