"""Speed of this project's PGD against torchattacks, foolbox and the forward/backward floor."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustness_checks.attacks import run_attack

STEPS = 20
REL_STEP_SIZE = 2.5
# Rounds per case (the small model is noisier and cheaper); BENCH_ATTACK_ROUNDS overrides both.
ROUNDS = {"digits": 15, "resnet18": 5}


@dataclass
class Row:
    """One line of the summary: min seconds, ratios to the floor, adversarial examples found."""

    runner: str
    seconds: float
    ratio_min: float
    ratio_paired: float
    found: int


@dataclass
class Case:
    """A model, a batch with labels the model gets right or wrong, and the L-inf eps."""

    name: str
    key: str
    model: nn.Module
    x: Tensor
    y: Tensor
    eps: float
    rows: list[Row] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return int(os.environ.get("BENCH_ATTACK_ROUNDS", ROUNDS[self.key]))

    @property
    def alpha(self) -> float:
        return REL_STEP_SIZE * self.eps / STEPS

    def misclassified(self, adversarial: Tensor) -> int:
        with torch.no_grad():
            return int((self.model(adversarial).argmax(dim=1) != self.y).sum())


def digits_case() -> Case:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    x, y = test_set()
    return Case("digits_cnn, 540 x 1x8x8", "digits", digits_cnn(pretrained=True), x, y, eps=0.1)


def resnet_case() -> Case:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # Random weights, but batch-norm statistics of the input distribution (not the identity),
        # so the untrained network's predictions vary between inputs as a trained one's do.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None
        model.train()
        for _ in range(4):
            model(torch.rand(128, 3, 32, 32, generator=generator))
        model.eval()
        x = torch.rand(64, 3, 32, 32, generator=generator)
        # Labels are the clean predictions, so every example starts correctly classified.
        y = model(x).argmax(dim=1)
    return Case("resnet18 (random), 64 x 3x32x32", "resnet18", model, x, y, eps=8 / 255)


def floor(case: Case) -> int:
    """(steps + 1) forward and backward passes w.r.t. the input: the cost of a fixed-step PGD."""
    for _ in range(STEPS + 1):
        leaf = case.x.detach().requires_grad_(True)
        loss = F.cross_entropy(case.model(leaf), case.y)
        torch.autograd.grad(loss, leaf)
    return 0


def ours(case: Case, early_stop: bool = False) -> int:
    result = run_attack(
        case.model,
        case.x,
        case.y,
        method="pgd",
        eps=case.eps,
        steps=STEPS,
        rel_step_size=REL_STEP_SIZE,
        early_stop=early_stop,
        generator=torch.Generator().manual_seed(0),
    )
    return int(result.success.sum())


def ours_early_stop(case: Case) -> int:
    return ours(case, early_stop=True)


def torchattacks_pgd(case: Case) -> int:
    torchattacks = pytest.importorskip("torchattacks")
    attack = torchattacks.PGD(case.model, eps=case.eps, alpha=case.alpha, steps=STEPS)
    # Peers draw their random start from torch's global generator: seeded alike for every run.
    torch.manual_seed(0)
    return case.misclassified(attack(case.x, case.y))


def foolbox_pgd(case: Case) -> int:
    foolbox = pytest.importorskip("foolbox")
    model = foolbox.PyTorchModel(case.model, bounds=(0.0, 1.0))
    attack = foolbox.attacks.LinfPGD(steps=STEPS, abs_stepsize=case.alpha, random_start=True)
    torch.manual_seed(0)
    _, clipped, _ = attack(model, case.x, case.y, epsilons=case.eps)
    return case.misclassified(clipped)


RUNNERS: dict[str, Callable[[Case], int]] = {
    "floor (21 fwd+bwd)": floor,
    "robustness_checks PGD-20": ours,
    "robustness_checks PGD-20 early stop": ours_early_stop,
    "torchattacks PGD-20": torchattacks_pgd,
    "foolbox LinfPGD-20": foolbox_pgd,
}


@pytest.fixture(scope="module", params=[digits_case, resnet_case], ids=["digits", "resnet18"])
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
            f"PGD-20 L-inf eps={made.eps:.4g} on {made.name}, {made.rounds} rounds:"
        )
        reporter.write_line(
            f"  {'attack':<38} {'min s':>8} {'min/min':>8} {'paired':>8} {'adversarial':>12}"
        )
        for row in made.rows:
            reporter.write_line(
                f"  {row.runner:<38} {row.seconds:>8.4f} {row.ratio_min:>8.3f}"
                f" {row.ratio_paired:>8.3f} {row.found:>12d}"
            )


@pytest.mark.parametrize("runner", list(RUNNERS), ids=[f.__name__ for f in RUNNERS.values()])
def test_pgd_speed(benchmark, request: pytest.FixtureRequest, case: Case, runner: str) -> None:
    run = RUNNERS[runner]
    # The floor is timed with the same clock as the benchmark (--benchmark-timer).
    timer = getattr(request.config.getoption("benchmark_timer"), "target", time.perf_counter)
    benchmark.group = f"pgd-{case.key}"
    floor_seconds: list[float] = []

    def time_floor() -> None:
        # Runs right before every round, untimed by pytest-benchmark: the floor is measured
        # interleaved with the attack, so load from other processes hits both alike.
        start = timer()
        floor(case)
        floor_seconds.append(timer() - start)

    setup = None if run is floor else time_floor
    found = benchmark.pedantic(run, args=(case,), setup=setup, rounds=case.rounds, warmup_rounds=1)
    seconds = list(benchmark.stats.stats.data)
    floors = floor_seconds[-case.rounds :] if floor_seconds else seconds
    paired = statistics.median(s / f for s, f in zip(seconds, floors, strict=True))
    row = Row(runner, min(seconds), min(seconds) / min(floors), paired, found)
    case.rows.append(row)
    benchmark.extra_info.update(
        {
            "floor_min_s": min(floors),
            "ratio_to_floor_min": row.ratio_min,
            "ratio_to_floor_paired_median": row.ratio_paired,
            "adversarial_found": found,
            "batch": len(case.x),
            "eps": case.eps,
            "threads": torch.get_num_threads(),
        }
    )
