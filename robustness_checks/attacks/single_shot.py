"""Attacks that evaluate one candidate per example and draw: FGSM and random perturbations."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, Objective
from robustness_checks.attacks.layout import Rows


def single_shot(
    ev: Evaluator,
    objective: Objective,
    rows: Rows,
    best: Candidates,
    units: Iterable[Tensor],
    *,
    early_stop: bool,
) -> None:
    """For each (n, ...) perturbation of unit norm in `units`, evaluate x + eps * unit projected
    to every row's region, and keep the better point per row."""
    for unit in units:
        pending = (~best.success).nonzero().squeeze(1) if early_stop else None
        for index in rows.chunks(pending):
            examples = rows.examples(index)
            x = rows.region(index, examples).start(unit.index_select(0, examples))
            labels = rows.labels.index_select(0, index)
            logits = ev(x)
            local = best.select(index)
            local.update(
                x, logits, objective.loss(logits, labels), objective.success(logits, labels)
            )
            best.put(index, local)
