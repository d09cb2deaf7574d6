"""Sequential checks: examples in a seeded random order, batch by batch, until every bound is
settled by an anytime-valid test (betting confidence sequences), so easy verdicts cost less."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics.confidence_sequence import confidence_sequence, settled

# (eps index, metric, comparison, threshold): one bound of an adversarial check
Bound = tuple[int, str, str, float]


def proportion(out: dict[str, Any], eps_index: int, metric: str) -> np.ndarray:
    """Per example, in evaluation order, the value whose mean is `metric` at that eps: 0/1, or
    a random model's share of correct draws (a drop then lies in [-1, 1])."""
    robust = out["robust"][:, eps_index].cpu().numpy().astype(np.float64)
    if metric == "adversarial_accuracy":
        return robust
    return out["clean"].cpu().numpy().astype(np.float64) - robust  # accuracy_drop


def _tested(values: np.ndarray, threshold: float, signed: bool) -> tuple[np.ndarray, float]:
    """Values and threshold on [0, 1], where the betting tests work: a signed drop in
    [-1, 1] is mapped by (v + 1) / 2."""
    if not signed:
        return values, threshold
    return (values + 1.0) / 2.0, (threshold + 1.0) / 2.0


def verdict(values: np.ndarray, threshold: float, *, comparison: str, confidence: float) -> str:
    """'passed' or 'failed' once the bound is settled either way, else 'open'."""
    side = int(settled(values, threshold, confidence)) if len(values) else 0
    if side == 0:
        return "open"
    above = side > 0
    return "failed" if above == (comparison == "<=") else "passed"


def run_until_settled(
    context: CheckContext,
    work: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, Any]],
    bounds: list[Bound],
    signed: bool = False,
) -> tuple[dict[str, Any], torch.Tensor]:
    """`work` over the examples in a seeded random order, a batch at a time, until every bound
    is settled (or the examples run out). Returns the joined outputs and the example indices
    used, in order. Looking after every batch keeps the error rates: the tests are
    anytime-valid (Ville's inequality). `signed`: drops are differences of shares, in [-1, 1]."""
    count = len(context.examples)
    order = torch.randperm(count, generator=context.generator("sequential"))
    chunk = int(min(context.examples.batch_size, max(16, count // 20)))
    parts: list[dict[str, Any]] = []
    used = 0
    while used < count:
        parts.append(context.map_examples(work, order=order[used : used + chunk]))
        used = min(used + chunk, count)
        joined = join(parts)
        if bounds and all(
            verdict(
                *_tested(
                    proportion(joined, i, metric), threshold, signed and metric == "accuracy_drop"
                ),
                comparison=comparison,
                confidence=context.confidence,
            )
            != "open"
            for i, metric, comparison, threshold in bounds
        ):
            break
    return join(parts), order[:used]


def settled_bounds(
    out: dict[str, Any], bounds: list[Bound], confidence: float, signed: bool = False
) -> dict[tuple[int, str], tuple[str, tuple[float, float]]]:
    """Per bound: its verdict ('passed', 'failed' or 'open') and the anytime-valid interval."""
    found = {}
    for i, metric, comparison, threshold in bounds:
        mapped = signed and metric == "accuracy_drop"
        values, tested = _tested(proportion(out, i, metric), threshold, mapped)
        low, high = confidence_sequence(values, confidence)
        found[(i, metric)] = (
            verdict(values, tested, comparison=comparison, confidence=confidence),
            (2.0 * low - 1.0, 2.0 * high - 1.0) if mapped else (low, high),
        )
    return found


def join(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Outputs of several map_examples calls as one: tensors concatenated, lists extended."""
    joined: dict[str, Any] = {}
    for key in parts[0]:
        values = [part[key] for part in parts]
        if isinstance(values[0], torch.Tensor):
            joined[key] = torch.cat(values)
        else:
            joined[key] = [item for value in values for item in value]
    return joined
