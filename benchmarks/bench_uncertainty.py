"""Speed of batched MC dropout and of the deep ensemble against their passes run one by one."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor, nn

from robustness_checks.uncertainty.samplers import dropout_only_train, predictive_samples

SAMPLES = 20
# Rounds per case; BENCH_UNCERTAINTY_ROUNDS overrides both.
ROUNDS = {"digits": 10, "mlp": 5}


@dataclass
class Row:
    """One line of the summary: min seconds of ours and of the baseline, and the speed-ups."""

    sampler: str
    ours: float
    baseline: float
    speedup_min: float
    speedup_paired: float


@dataclass
class Case:
    """A model with dropout, a batch of inputs and the members of a deep ensemble."""

    name: str
    key: str
    model: nn.Module
    x: Tensor
    members: list[nn.Module]
    rows: list[Row] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return int(os.environ.get("BENCH_UNCERTAINTY_ROUNDS", ROUNDS[self.key]))


def digits_case() -> Case:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    x, _ = test_set()
    members = [digits_cnn(pretrained=True, seed=seed) for seed in range(1, 5)]
    return Case("digits_cnn, 540 x 1x8x8", "digits", digits_cnn(pretrained=True), x, members)


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 1024),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(1024, 10),
    ).eval()


def mlp_case() -> Case:
    x = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    members = [mlp(seed) for seed in range(1, 5)]
    return Case("MLP 784-1024-1024-10 (random), 256 x 1x28x28", "mlp", mlp(0), x, members)


def mc_dropout_batched(case: Case) -> Tensor:
    return predictive_samples(case.model, case.x, method="mc_dropout", samples=SAMPLES)


def mc_dropout_loop(case: Case) -> Tensor:
    with dropout_only_train(case.model), torch.no_grad():
        return torch.stack([case.model(case.x).softmax(dim=-1) for _ in range(SAMPLES)])


def ensemble_batched(case: Case) -> Tensor:
    return predictive_samples(case.model, case.x, method="ensemble", ensemble=case.members)


def ensemble_loop(case: Case) -> Tensor:
    with torch.no_grad():
        return torch.stack([member(case.x).softmax(dim=-1) for member in case.members])


# sampler: (ours, the baseline it is compared with)
PAIRS: dict[str, tuple[Callable[[Case], Tensor], Callable[[Case], Tensor]]] = {
    f"mc_dropout T={SAMPLES}": (mc_dropout_batched, mc_dropout_loop),
    "ensemble of 4": (ensemble_batched, ensemble_loop),
}


@pytest.fixture(scope="module", params=[digits_case, mlp_case], ids=["digits", "mlp"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    made = request.param()
    yield made
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not made.rows:
        return
    # Fixture teardown output is captured and dropped for passing tests; write around it.
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            f"{made.name}, {made.rounds} rounds, {torch.get_num_threads()} threads "
            "(speed-up = baseline seconds / ours):"
        )
        reporter.write_line(
            f"  {'sampler':<16} {'ours min s':>11} {'baseline min s':>15} "
            f"{'min/min':>8} {'paired':>8}"
        )
        for row in made.rows:
            reporter.write_line(
                f"  {row.sampler:<16} {row.ours:>11.4f} {row.baseline:>15.4f}"
                f" {row.speedup_min:>8.2f} {row.speedup_paired:>8.2f}"
            )


@pytest.mark.parametrize("sampler", list(PAIRS))
def test_uncertainty_speed(
    benchmark, request: pytest.FixtureRequest, case: Case, sampler: str
) -> None:
    ours, baseline = PAIRS[sampler]
    timer = getattr(request.config.getoption("benchmark_timer"), "target", time.perf_counter)
    benchmark.group = f"{sampler.split()[0]}-{case.key}"
    baseline_seconds: list[float] = []

    def time_baseline() -> None:
        # Runs right before every timed round, so load from other processes hits both alike.
        start = timer()
        baseline(case)
        baseline_seconds.append(timer() - start)

    result = benchmark.pedantic(
        ours, args=(case,), setup=time_baseline, rounds=case.rounds, warmup_rounds=1
    )
    assert result.shape[1:] == (len(case.x), 10)
    seconds = list(benchmark.stats.stats.data)
    paired_baseline = baseline_seconds[-case.rounds :]
    paired = statistics.median(b / s for s, b in zip(seconds, paired_baseline, strict=True))
    row = Row(
        sampler, min(seconds), min(paired_baseline), min(paired_baseline) / min(seconds), paired
    )
    case.rows.append(row)
    benchmark.extra_info.update(
        {
            "baseline_min_s": row.baseline,
            "speedup_min": row.speedup_min,
            "speedup_paired_median": row.speedup_paired,
            "batch": len(case.x),
            "threads": torch.get_num_threads(),
        }
    )
