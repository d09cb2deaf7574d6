"""Validity case of the `fuzz` check: inputs of which a known share hide a brightness trigger."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from robustness_checks.validity.cases import RULES, ValidityCase

SIZES = (1, 20)  # real hypothesis searches: each seed runs the check end to end
TRIGGER = 0.1  # a fragile input flips when its brightness rises by more than this
BUDGET = 0.3  # the brightness perturbation's budget
MAX_EXAMPLES = 12  # hypothesis test cases per input


class Trigger(nn.Module):
    """Class 0, unless the input is marked fragile (its first pixel above 0.65) and its mean
    brightness was raised by more than TRIGGER: then class 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        fragile = (flat[:, 0] > 0.65).float()
        brightness = flat[:, 1:].mean(dim=1) - 0.5
        flip = fragile * (brightness - TRIGGER) * 100.0
        return torch.stack([torch.zeros_like(flip), flip], dim=1)


def cases() -> list[ValidityCase]:
    """failing_inputs <= 0 (label_invariant under brightness 0.3): at the bound no input can be
    broken; strict's false passes are measured with one fragile input among n, and power with
    one among 20 (a witness rule has no population value between)."""
    return [
        ValidityCase(
            check_type="fuzz",
            metric="failing_inputs",
            comparison="<=",
            bound=0.0,
            violating=0.05,
            passes=_passes,
            population=(
                "n inputs, a share = truth of them (at least one when the truth is above 0) hide "
                "a trigger that a brightness rise above 0.1 fires, within the budget 0.3; the "
                "check runs hypothesis for real (max_examples 12)"
            ),
            sizes=SIZES,
            power_size=20,
            strict_at=1e-9,
        )
    ]


def inputs(truth: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n grey 8x8 images, the first ceil(truth * n) marked fragile; labels 0."""
    x = torch.full((n, 1, 8, 8), 0.5)
    x[:, 0, 0, 0] = 0.0
    x[: math.ceil(truth * n), 0, 0, 0] = 1.0
    return x, torch.zeros(n, dtype=torch.long)


def _passes(truth: float, n: int, seeds: Sequence[int], confidence: float) -> dict[str, np.ndarray]:
    """Every rule on the first seeds; a counterexample is a witness under every rule, so where
    they agreed there, the other seeds run once (under point) for all three."""
    data = inputs(truth, n)
    found: dict[str, list[bool]] = {rule: [] for rule in RULES}
    agreed = True
    for number, seed in enumerate(seeds):
        rules = RULES if number < RULES_CHECKED or not agreed else ("point",)
        outcome = {rule: _run(data, n, seed, confidence, rule) for rule in rules}
        agreed = agreed and len(set(outcome.values())) == 1
        for rule in RULES:
            found[rule].append(outcome.get(rule, outcome["point"]))
    return {rule: np.array(values) for rule, values in found.items()}


RULES_CHECKED = 3  # seeds on which every rule runs


def _run(data: Any, n: int, seed: int, confidence: float, rule: str) -> bool:
    from robustness_checks.api import run_check

    result = run_check(
        "fuzz",
        Trigger(),
        data,
        name="validity",
        seed=seed,
        confidence=confidence,
        device="cpu",
        decision=rule,
        inputs=n,
        perturbations=[{"kind": "brightness", "max": BUDGET}],
        max_examples=MAX_EXAMPLES,
        database=False,
    )
    return result.passed
