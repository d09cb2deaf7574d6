"""Evaluations each noise estimator needs for 10% relative error, against plain MC and truths."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from robustness_checks.failure_probability import estimate_failure_probability

TRUTHS = Path(__file__).resolve().parent / "noise_truth.json"
TARGET = 0.1
# Independent runs (generator seeds) per case; BENCH_NOISE_SEEDS overrides.
SEEDS = int(os.environ.get("BENCH_NOISE_SEEDS", "5"))
# Budgets generous enough for every estimator to reach the target; the targets are
# 10,000 evaluations (linear, p = 1e-6) and 100,000 (CNN, p near 1e-5).
BUDGET = {"importance": 100_000, "splitting": 400_000, "mc": 400_000}
TARGET_EVALUATIONS = {"linear": 10_000, "cnn": 100_000}


@dataclass
class Case:
    """One input with a known miss probability: exact (affine) or plain Monte Carlo (CNN)."""

    name: str
    kind: str
    model: nn.Module
    x: Tensor
    label: int
    sigma: float
    p: float
    truth_ci: tuple[float, float]
    rows: list[str] = field(default_factory=list)

    @property
    def mc_need(self) -> float:
        """Draws plain Monte Carlo needs on average for the target: (1 - p) / (p RE^2)."""
        return (1 - self.p) / (self.p * TARGET**2)


class Affine(nn.Module):
    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))


def linear_case() -> Case:
    """2-class affine model on 64 inputs, sigma 0.5, p = Phi(-m / (sigma ||w0 - w1||)) = 1e-6."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 64, generator=generator) / 8
    direction = weight[0] - weight[1]
    beta = float(-stats.norm.ppf(1e-6))
    x = torch.randn(64, generator=generator)
    x += (beta * 0.5 * direction.norm() - direction @ x) * direction / direction.norm() ** 2
    d = direction.double()
    p = float(stats.norm.cdf(-float(d @ x.double()) / (0.5 * float(d.norm()))))
    return Case("linear 64-d, p=1e-6", "linear", Affine(weight).eval(), x, 0, 0.5, p, (p, p))


def cnn_cases() -> list[Case]:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    truths = json.loads(TRUTHS.read_text())
    model = digits_cnn(pretrained=True)
    images, labels = test_set()
    return [
        Case(
            f"digits_cnn test[{t['index']}]",
            "cnn",
            model,
            images[t["index"]],
            int(labels[t["index"]]),
            truths["sigma"],
            t["p"],
            tuple(t["ci95"]),
        )
        for t in truths["inputs"]
    ]


CASES = [linear_case, *[lambda i=i: cnn_cases()[i] for i in range(4)]]


@pytest.fixture(scope="module", params=range(len(CASES)), ids=lambda i: f"case{i}")
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    built = CASES[request.param]()
    yield built
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            f"{built.name}: p = {built.p:.3g}, truth CI {built.truth_ci[0]:.3g}.."
            f"{built.truth_ci[1]:.3g}, plain MC needs {built.mc_need:.3g} for 10%"
        )
        for row in built.rows:
            reporter.write_line("  " + row)


@pytest.mark.parametrize("estimator", ["importance", "splitting", "mc"])
def test_noise_estimator_cost(benchmark, case: Case, estimator: str) -> None:
    if estimator == "mc" and case.mc_need > BUDGET["mc"]:
        pytest.skip(f"plain MC would need about {case.mc_need:.2g} evaluations")
    results = []

    def run() -> None:
        results.clear()
        for seed in range(SEEDS):
            generator = torch.Generator().manual_seed(seed)
            results.append(
                estimate_failure_probability(
                    case.model,
                    case.x,
                    case.label,
                    sigma=case.sigma,
                    estimator=estimator,
                    relative_error=TARGET,
                    max_evaluations=BUDGET[estimator],
                    generator=generator,
                )
            )

    benchmark.pedantic(run, rounds=1, iterations=1)
    evaluations = [r.evaluations for r in results]
    covers = sum(r.ci[0] <= case.p <= r.ci[1] for r in results)
    overlaps = sum(r.ci[0] <= case.truth_ci[1] and case.truth_ci[0] <= r.ci[1] for r in results)
    converged = sum(r.converged for r in results)
    within = sum(
        e <= TARGET_EVALUATIONS[case.kind] and r.converged
        for e, r in zip(evaluations, results, strict=True)
    )
    mean_ratio = statistics.fmean(r.probability for r in results) / case.p
    # Observed spread of the estimates against the relative error they report.
    spread = statistics.stdev(r.probability for r in results) / (mean_ratio * case.p)
    reported = statistics.median(r.relative_error for r in results)
    info = {
        "p": case.p,
        "seeds": SEEDS,
        "evaluations_median": statistics.median(evaluations),
        "evaluations_max": max(evaluations),
        "ratio_to_mc_need": statistics.median(evaluations) / case.mc_need,
        "converged": converged,
        "within_target_evaluations": within,
        "covers_truth": covers,
        "overlaps_truth_ci": overlaps,
        "mean_estimate_over_truth": mean_ratio,
        "spread": spread,
        "relative_error_median": reported,
        "relative_errors": [round(r.relative_error, 4) for r in results],
        "estimates": [r.probability for r in results],
    }
    benchmark.extra_info.update(info)
    case.rows.append(
        f"{estimator:10s} evaluations median {info['evaluations_median']:>9,.0f} "
        f"max {info['evaluations_max']:>9,} ratio to MC {info['ratio_to_mc_need']:.2e} "
        f"converged {converged}/{SEEDS} within target {within}/{SEEDS} "
        f"covers {covers}/{SEEDS} overlaps {overlaps}/{SEEDS} mean/truth {mean_ratio:.3f} "
        f"spread {spread:.3f} reported RE {reported:.3f}"
    )
    assert math.isfinite(mean_ratio)
