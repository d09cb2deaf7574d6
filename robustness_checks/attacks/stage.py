"""One stage of `method: auto`: APGD or Square with early stop at one eps, from known logits."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from robustness_checks.attacks.apgd import (
    DLRObjective,
    apgd,
    make_objective,
    reduce_targets,
    row_labels,
)
from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, KeptByLoss, Objective
from robustness_checks.attacks.layout import MAX_CHUNK_ELEMENTS, Rows
from robustness_checks.attacks.regions import Bounds, NormName, RandomSource
from robustness_checks.attacks.square import square


def run_stage(
    ev: Evaluator,
    options: dict[str, Any],
    x: Tensor,
    y: Tensor,
    clean_logits: Tensor,
    targets: Tensor | None,
    *,
    eps: float,
    norm: NormName,
    bounds: Bounds,
    generator: RandomSource,
    max_batch: int | None,
    start_noise: Tensor | None = None,
    kept_by_loss: bool = False,
) -> Candidates:
    """Per example, the best point of the apgd or square attack of `options`, run with early
    stop at one eps from the examples' known `clean_logits`: the engine that `run_attack` runs,
    without its clean pass, and for APGD with `retire_dead`. `targets` (copies, n): the classes
    of a targeted APGD (`options['targeted']` says only that it is targeted), else None. `ev`,
    a fresh Evaluator, counts the stage's passes and takes its first-gradient diagnostic.
    `start_noise`: APGD's random start (see `apgd`), None to draw it from `generator`.
    `kept_by_loss`: a random model's stage, whose points are kept by loss alone (`KeptByLoss`)."""
    n = x.shape[0]
    ev.classes, ev.examples = clean_logits.shape[1], n  # as if it had made the clean pass
    loss = options.get("loss", "ce")
    objective: Objective | DLRObjective | KeptByLoss = Objective(False)
    if options["method"] == "apgd":
        objective = make_objective(loss, targets is not None, clean_logits.shape[1])
    if kept_by_loss:
        objective = KeptByLoss(objective)
    labels = row_labels(loss, y, targets, 1)
    eps_rows = torch.full((labels.shape[0],), eps, device=x.device, dtype=x.dtype)
    per_row = max(1, math.prod(x.shape[1:])) * ev.per_input
    chunk = max_batch or max(n, MAX_CHUNK_ELEMENTS // per_row)
    rows = Rows(x, eps_rows, labels, 2.0 * eps_rows, norm, bounds, chunk)
    copies = labels.shape[0] // n
    row_logits = clean_logits.repeat(copies, 1)
    best = Candidates(
        x.repeat(copies, *([1] * (x.ndim - 1))),
        row_logits,
        objective.loss(row_logits, labels),
        objective.success(row_logits, labels),
    )
    if options["method"] == "square":
        square(
            ev,
            objective,
            rows,
            best,
            queries=options["queries"],
            p_init=None,
            generator=generator,
            retire=options.get("retire", ()),
            stall=options.get("stall"),
        )
    else:
        apgd(
            ev,
            objective,
            rows,
            best,
            steps=options["steps"],
            restarts=1,
            random_start=True,
            early_stop=True,
            generator=generator,
            group=n,
            retire_dead=True,
            start_noise=start_noise,
        )
    if targets is not None:
        best, _ = reduce_targets(best, targets)
    return best
