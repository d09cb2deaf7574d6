"""Sharding across torch.distributed ranks, per-example seeding, OOM halving and precision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import robustness_checks as rc
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.execution.batching import AdaptiveBatches, is_out_of_memory
from robustness_checks.execution.distributed import World, gather_batches
from robustness_checks.execution.random_streams import ExampleStream

WEIGHTS = Path(rc.__file__).parent / "demo" / "weights" / "digits_cnn_seed0.pt"

SPEC = f"""\
model:
  factory: robustness_checks.demo.model:digits_cnn
  weights: {WEIGHTS}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {{limit: 301}}
  batch_size: 64
checks:
  - {{name: calibrated, type: calibration, metric: ece, max: 0.05}}
  - name: pgd
    type: adversarial
    attack: {{method: pgd, norm: inf, eps: [0.05, 0.1], steps: 5, restarts: 2}}
    max_drop: 0.6
  - name: detects-noise
    type: ood
    ood_data: {{factory: "robustness_checks.demo.digits:noise_images", kwargs: {{count: 99}}}}
    score: energy
    metric: auroc
    min: 0.5
  - {{name: noisy, type: noise, sigma: 0.3, estimator: mc, relative_error: 0.3, inputs: 3,
      max_evaluations: 2048}}
"""


# --- sharding -----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 7, 301])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_ranks_own_contiguous_blocks_that_cover_every_example_once(count: int, size: int) -> None:
    blocks = [World(rank, size).shard(count) for rank in range(size)]
    assert [i for block in blocks for i in block] == list(range(count))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_batch_outputs_join_in_example_order() -> None:
    outputs = [
        {"a": torch.tensor([1, 2]), "rows": [{"i": 0}]},
        {"a": torch.tensor([3]), "rows": []},
        {"a": torch.tensor([4, 5]), "rows": [{"i": 4}]},
    ]
    joined = gather_batches(outputs, World())
    assert joined["a"].tolist() == [1, 2, 3, 4, 5]
    assert joined["rows"] == [{"i": 0}, {"i": 4}]


# --- per-example random draws ---------------------------------------------------------------


def test_example_stream_rows_depend_on_the_example_index_alone() -> None:
    whole = ExampleStream(7, torch.arange(10))
    first, second = whole.uniform((10, 3), torch.float32), whole.uniform((10, 3), torch.float32)
    part = ExampleStream(7, torch.arange(4, 10))
    assert torch.equal(part.uniform((6, 3), torch.float32), first[4:])
    assert torch.equal(part.uniform((6, 3), torch.float32), second[4:])
    assert not torch.equal(first, second)  # each call advances the stream
    with pytest.raises(ValueError, match="one row per example"):
        part.normal((5, 3), torch.float32)


@pytest.mark.parametrize(
    "attack",
    [
        {"method": "pgd", "norm": "inf", "eps": [0.05, 0.1], "steps": 3, "restarts": 2},
        {"method": "pgd", "norm": 2, "eps": 0.5, "steps": 3},
        {"method": "uniform", "norm": "inf", "eps": 0.3, "restarts": 3},
        {"method": "gaussian", "norm": 2, "eps": 2.0},
    ],
)
def test_attack_results_do_not_depend_on_the_batch_size(attack: dict) -> None:
    model = digits_cnn(pretrained=True)
    results = [
        rc.run_check(
            "adversarial", model, test_set(limit=60), attack=attack, batch_size=size
        ).to_dict()
        for size in (60, 16, 7)
    ]
    per_eps = [result["details"]["per_eps"] for result in results]
    assert per_eps[0] == per_eps[1] == per_eps[2]
    indices = [[row["index"] for row in r["details"]["failing_examples"]] for r in results]
    assert indices[0] == indices[1] == indices[2]


# --- out-of-memory halving -------------------------------------------------------------------


class RaisesOutOfMemoryAbove(nn.Module):
    """The demo CNN, which 'runs out of memory' on batches larger than `limit`."""

    def __init__(self, limit: int, error: type[Exception] = torch.OutOfMemoryError) -> None:
        super().__init__()
        self.net = digits_cnn(pretrained=True)
        self.limit = limit
        self.error = error
        self.refused: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            self.refused.append(int(x.shape[0]))
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def test_oom_halves_the_batch_and_loses_no_example() -> None:
    calls: list[range] = []

    def work(positions: range) -> list[int]:
        if len(positions) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        calls.append(positions)
        return list(positions)

    batches = AdaptiveBatches(16)
    results = batches.run(range(5, 30), work)
    assert [i for part in results for i in part] == list(range(5, 30))
    assert batches.batch_size == 2 and batches.halvings == 3
    assert all(len(part) <= 3 for part in calls)


def test_errors_other_than_oom_are_not_retried() -> None:
    def work(positions: range) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        AdaptiveBatches(16).run(range(10), work)
    assert not is_out_of_memory(ValueError("out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, RuntimeError])
@pytest.mark.parametrize(
    "check",
    [
        {"type": "calibration", "metric": "ece"},
        {"type": "adversarial", "attack": {"method": "pgd", "eps": 0.1, "steps": 3}},
        {"type": "selective", "score": "confidence", "coverage": 0.8},
    ],
)
def test_a_check_that_runs_out_of_memory_gives_the_same_result_with_smaller_batches(
    check: dict, error: type[Exception], capsys: pytest.CaptureFixture[str]
) -> None:
    data = test_set(limit=200)
    reference = rc.run_check(model=digits_cnn(pretrained=True), data=data, batch_size=50, **check)
    model = RaisesOutOfMemoryAbove(50, error)
    result = rc.run_check(model=model, data=data, batch_size=200, **check)
    assert model.refused[0] == 200 and 100 in model.refused
    assert result.outcome == reference.outcome
    assert result.value == pytest.approx(reference.value, rel=1e-6)
    assert result.ci == pytest.approx(reference.ci, rel=1e-6)
    assert "ran out of memory at 200 examples; retrying with batch size 100" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("estimator", ["mc", "splitting"])
def test_noise_sampling_that_runs_out_of_memory_gives_the_same_estimate(estimator: str) -> None:
    from robustness_checks.failure_probability import estimate_failure_probability

    x, y = test_set(limit=1)
    options = {"sigma": 0.5, "estimator": estimator, "max_evaluations": 3000, "batch_size": 256}
    reference = estimate_failure_probability(
        digits_cnn(pretrained=True), x[0], int(y[0]), **options
    )
    model = RaisesOutOfMemoryAbove(64)
    estimate = estimate_failure_probability(model, x[0], int(y[0]), **options)
    assert model.refused and max(model.refused) > 64
    assert estimate.probability == reference.probability
    assert estimate.evaluations == reference.evaluations


# --- precision and memory format ---------------------------------------------------------------


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_keeps_float32_statistics_and_close_numbers(precision: str) -> None:
    model, data = digits_cnn(pretrained=True), test_set(limit=300)
    full = rc.calibration(model, data, metric="nll")
    half = rc.calibration(model, data, metric="nll", precision=precision)
    assert half.value != full.value  # the forward passes really ran in bfloat16
    assert half.value == pytest.approx(full.value, rel=0.05)
    attack = {"method": "pgd", "eps": 0.1, "steps": 5}
    full = rc.run_check("adversarial", model, data, attack=attack)
    half = rc.run_check("adversarial", model, data, attack=attack, precision=precision)
    assert abs(half.value - full.value) <= 0.03


def test_counted_model_returns_float32_logits_under_autocast() -> None:
    from robustness_checks.examples import as_examples
    from robustness_checks.execution.context import CheckContext

    context = CheckContext.create(
        digits_cnn(pretrained=True),
        as_examples(test_set(limit=10)),
        torch.device("cpu"),
        "c",
        precision="bf16",
        channels_last=True,
    )
    seen: list[torch.Tensor] = []
    context.model.model.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    logits = context.logits()
    assert logits.dtype == torch.float32
    assert seen[0].is_contiguous(memory_format=torch.channels_last)


def test_spec_precision_must_be_one_of_the_known_ones(tmp_path: Path) -> None:
    from robustness_checks.errors import SpecError
    from robustness_checks.spec.parse import load_spec

    path = tmp_path / "p.robustness.yaml"
    path.write_text(SPEC.replace("checks:", "precision: fp8\nchecks:", 1))
    with pytest.raises(SpecError, match="precision"):
        load_spec(path)


# --- two processes with gloo -----------------------------------------------------------------


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RANK"))}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _comparable(path: Path) -> list[dict]:
    results = json.loads(path.read_text())["results"]
    for result in results:
        result.pop("seconds")
    return results


def test_two_gloo_processes_give_the_numbers_of_one(tmp_path: Path) -> None:
    (tmp_path / "dist.robustness.yaml").write_text(SPEC)
    pytest_args = ["-m", "pytest", "dist.robustness.yaml", "-p", "no:cacheprovider", "-q"]
    one = _run([sys.executable, *pytest_args, "--robustness-json=one.json"], tmp_path)
    assert one.returncode == 0, one.stdout + one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    two = _run(
        [
            *torchrun,
            "--nproc_per_node=2",
            *pytest_args,
            "--robustness-json=two.json",
            "--junitxml=two.xml",
        ],
        tmp_path,
    )
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("JSON report written to two.json") == 1  # rank 0 alone reports
    assert (tmp_path / "two.xml").exists()
    single, sharded = _comparable(tmp_path / "one.json"), _comparable(tmp_path / "two.json")
    assert [r["check"] for r in sharded] == ["calibrated", "pgd", "detects-noise", "noisy"]
    by_check = {a["check"]: (a, b) for a, b in zip(single, sharded, strict=True)}
    # Calibration and OOD: the same metric from the same logits (batches differ, so the last
    # bits of a logit may too); the attack's draws are per example, so its counts are equal.
    for name in ("calibrated", "detects-noise"):
        a, b = by_check[name]
        assert b["value"] == pytest.approx(a["value"], rel=1e-6, abs=1e-9)
        assert b["ci"] == pytest.approx(a["ci"], rel=1e-6, abs=1e-9)
        assert b["evaluations"] == a["evaluations"]
    a, b = by_check["pgd"]
    assert b["details"]["per_eps"] == a["details"]["per_eps"]
    assert b["details"]["failing_examples"] == a["details"]["failing_examples"]
    assert (b["value"], b["ci"], b["evaluations"]) == (a["value"], a["ci"], a["evaluations"])
    # The noise check splits its inputs; each input keeps its own generator.
    a, b = by_check["noisy"]
    assert [row["probability"] for row in b["details"]["inputs"]] == [
        row["probability"] for row in a["details"]["inputs"]
    ]
