"""A fast subset of the held-out noise validation (benchmarks/noise_heldout): importance
sampling on models and inputs it was not developed on, against stored Monte Carlo truths."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from benchmarks.noise_heldout.models import ARCHITECTURES, load, weights_path
from benchmarks.noise_heldout.validate import TRUTHS, run
from robustness_checks.demo.digits import test_set

SEEDS = range(200, 220)


def truth(model: str, index: int) -> dict:
    inputs = json.loads(TRUTHS.read_text())["inputs"]
    return next(t for t in inputs if t["model"] == model and t["index"] == index)


def test_held_out_set_is_as_documented() -> None:
    inputs = json.loads(TRUTHS.read_text())["inputs"]
    assert {t["model"] for t in inputs} == set(ARCHITECTURES)
    assert len(inputs) >= 10
    assert min(t["p"] for t in inputs) < 2e-6 and max(t["p"] for t in inputs) > 1e-3
    for t in inputs:
        assert t["n"] >= (3e7 if t["p"] < 1e-5 else 1e7)
        assert t["ci95"][0] <= t["p"] <= t["ci95"][1]
    images, labels = test_set()
    for name in ARCHITECTURES:
        assert weights_path(name).stat().st_size < 1 << 20
        with torch.no_grad():
            accuracy = (load(name)(images).argmax(1) == labels).float().mean()
        assert accuracy > 0.95


# Splitting's median evaluations to 10% over 20 seeds (benchmarks/README.md): importance
# sampling may spend at most that, and at most a third of it at p <= 1e-5.
SPLITTING = {("bn_cnn", 352): 29_717, ("plain_cnn", 145): 95_128, ("mlp", 145): 98_338}


@pytest.mark.slow
@pytest.mark.parametrize(("model", "index"), list(SPLITTING))
def test_importance_on_held_out_inputs(model: str, index: int) -> None:
    # Seeds 200-219 were used neither in development nor in the benchmark tables. The bounds
    # are looser than the (17 of 20, 1.5x), which the table checks: over 20 seeds a
    # correct 95% interval against a truth with 3% error of its own covers 16 or fewer
    # times in about 5% of inputs, and the spread of 20 estimates is itself +-30% (99%).
    target = truth(model, index)
    row = run(target, "importance", SEEDS, budget=100_000)
    max_evaluations = SPLITTING[model, index] / (3 if target["p"] <= 1e-5 else 1)
    assert row.converged == len(SEEDS)
    assert row.covers >= 16
    assert 0.5 <= row.spread_over_reported <= 2.0
    assert statistics.median(r.evaluations for r in row.results) <= max_evaluations
