"""Splitting pilots: importance sampling's fallback proposal when gradients are unusable."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from robustness_checks.failure_probability.margin import MarginOracle
from robustness_checks.failure_probability.splitting import (
    MAX_STATE_ELEMENTS,
    SubsetRun,
    subset_run,
)


def pilot_summary(run: SubsetRun) -> dict[str, Any]:
    """One pilot run's class, estimate, relative error, cost and levels, for details."""
    return {
        "class": run.target,
        "probability": math.exp(run.log_p),
        "relative_error": math.sqrt(run.cov2),
        "evaluations": run.evaluations,
        "levels": run.levels,
    }


def pilot_estimate(runs: list[SubsetRun]) -> tuple[float, float]:
    """Sum of the class runs' estimates, and its relative error (runs are independent)."""
    logs = torch.tensor([run.log_p for run in runs], dtype=torch.float64)
    log_p = float(torch.logsumexp(logs, 0))
    shares = torch.exp(logs - log_p)
    cov2 = torch.tensor([run.cov2 for run in runs], dtype=torch.float64)
    return log_p, math.sqrt(float((shares**2 * cov2).sum()))


def share_log_weights(runs: list[SubsetRun]) -> Tensor:
    """Per-sample log weights giving each run's failures its estimated share of p."""
    parts = []
    for run in runs:
        failing = int((run.margins <= 0).sum())
        log_share = run.log_p - math.log(max(1, failing))
        parts.append(
            torch.full(run.margins.shape, log_share, dtype=torch.float64, device=run.margins.device)
        )
    return torch.cat(parts)


def class_pilots(
    oracle: MarginOracle,
    *,
    samples: int,
    p0: float,
    rho: float,
    budget: int,
    generator: torch.Generator,
    max_classes: int,
    min_count: int = 2,
) -> list[SubsetRun]:
    """One splitting run per competing class, from one shared level of iid draws.

    A single run drifts: each level keeps a few dozen seeds, so a class that wins a few
    percent of the failures often has none left at the last level, the proposal misses it,
    and its failures (weights up to 1 / alpha) are almost never drawn: the estimate comes out
    low with a small reported error. Here each class that wins at least `min_count` of the
    iid draws (at most `max_classes`; see `_candidate_classes`) gets its own run on the
    failures it wins; the runs' estimates of P(fail, winner = class) set the mixture's shares.
    """
    start = oracle.evaluations
    u = torch.randn(
        (samples, oracle.dim), generator=generator, device=oracle.device, dtype=oracle.dtype
    )
    margins, winners = oracle.evaluate(u)
    runs = []
    for cls in _candidate_classes(margins, winners, min_count, max_classes):
        remaining = budget - (oracle.evaluations - start)
        if runs and max(run.evaluations for run in runs) > remaining:
            break
        run = subset_run(
            oracle,
            samples=samples,
            p0=p0,
            rho=rho,
            budget=remaining,
            generator=generator,
            target=cls,
            initial=(u, margins, winners),
        )
        runs.append(_trimmed(run))
    return runs


def _candidate_classes(
    margins: Tensor, winners: Tensor, min_count: int, max_classes: int
) -> list[int]:
    """Classes winning at least `min_count` iid draws, most frequent in the lowest fifth first.

    The class that dominates the failures need not dominate near the typical noise: on one
    demo-CNN input a class with a fifth of the failures won 2 of the 100 lowest margins of
    1,000 draws, so every class that wins some draws is a candidate.
    """
    size = int(winners.max()) + 1
    lowest = torch.argsort(margins, stable=True)[: max(min_count, margins.numel() // 5)]
    near = torch.bincount(winners[lowest], minlength=size)
    counts = torch.bincount(winners, minlength=size)
    order = torch.argsort(near * (margins.numel() + 1) + counts, descending=True, stable=True)
    classes = [int(c) for c in order[:max_classes] if int(counts[c]) >= min_count]
    return classes or [int(order[0])]


def _trimmed(run: SubsetRun, keep: int = 1000, min_cluster: int = 10) -> SubsetRun:
    """The run with only the last-level samples the proposal is fitted to (bounded memory).

    At most `keep` failing samples, and for large inputs at most a quarter of a level's state
    budget, so that eight classes' samples together stay within two levels' worth.
    """
    keep = max(min_cluster, min(keep, MAX_STATE_ELEMENTS // (4 * run.samples.shape[1])))
    failing = (run.margins <= 0).nonzero().flatten()
    if failing.numel() >= min_cluster:
        picks = failing[
            torch.linspace(0, failing.numel() - 1, min(keep, failing.numel()))
            .round()
            .long()
            .to(failing.device)
        ]
    else:
        picks = torch.argsort(run.margins, stable=True)[:min_cluster]
    return dataclasses.replace(
        run, samples=run.samples[picks], margins=run.margins[picks], winners=run.winners[picks]
    )
