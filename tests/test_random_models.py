"""Random models: detection, same seed same values, expectation over transformation, and
robust accuracy as an expectation over the model's randomness, judged by fresh draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import robustness_checks
from robustness_checks.attacks import run_attack
from robustness_checks.attacks.expectation import Expectation, expected_correct
from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.demo.randomised import AlwaysDropout, dropout_on_cnn, noisy_input_cnn
from robustness_checks.execution.randomness import detect_randomness
from robustness_checks.metrics.bounded_mean import bounded_mean_interval
from robustness_checks.metrics.confidence_sequence import log_capital

TIMING = {"seconds", "rounds_seconds", "examples_per_second", "evaluations_per_second"}


class Coin(nn.Module):
    """Predicts class 0 with probability `q` at every call, independently per row, else 1."""

    def __init__(self, q: Tensor) -> None:
        super().__init__()
        self.q = q

    def forward(self, x: Tensor) -> Tensor:
        rows = x.shape[0]
        heads = torch.rand(rows) < self.q.repeat(rows // len(self.q))
        return torch.stack([heads.float(), (~heads).float()], dim=1) + 0.0 * x.flatten(1)[:, :1]


class DropoutOn(nn.Module):
    """`model` with dropout left on at its input and on a constant added to its logits, so that
    even a model that ignores its input (the fuzz case's) is random."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.dropout = model, AlwaysDropout(0.1)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(self.dropout(x))
        return logits + self.dropout(torch.ones_like(logits)) - 1.0


def _values(result: robustness_checks.CheckResult) -> dict:
    return {k: v for k, v in result.to_dict().items() if k not in TIMING}


def test_detection_finds_random_models_and_leaves_deterministic_ones() -> None:
    x, _ = test_set(40)
    assert detect_randomness(noisy_input_cnn(0.15), x).random
    assert detect_randomness(dropout_on_cnn(), x).random
    demo = digits_cnn(pretrained=True).eval()
    found = detect_randomness(demo, x)
    assert not found.random and found.largest_change == 0.0 and found.examples == 32
    # nn.Dropout modules of a model in eval mode draw nothing: the MC-dropout sampler's model.
    assert not detect_randomness(nn.Sequential(nn.Dropout(0.5), demo).eval(), x).random


def test_batch_norm_in_training_is_not_random_and_does_not_move() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Linear(16, 10))
    net.train()
    before = net[2].running_mean.clone()
    assert not detect_randomness(net, test_set(40)[0]).random
    assert torch.equal(net[2].running_mean, before) and net[2].training


def test_expectation_averages_logits_over_draws() -> None:
    model = noisy_input_cnn(0.15)
    x, _ = test_set(5)
    torch.manual_seed(0)
    averaged = Expectation(model, 4)(x)
    torch.manual_seed(0)
    draws = model(x.repeat(4, 1, 1, 1)).view(4, 5, -1)
    assert torch.allclose(averaged, draws.mean(dim=0))


def test_expected_correct_estimates_a_known_probability() -> None:
    q = torch.tensor([0.1, 0.5, 0.9, 1.0])
    torch.manual_seed(0)
    found = expected_correct(Coin(q), torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), 4000)
    # Binomial(4000, q) / 4000: within 5 standard errors of q.
    assert torch.all((found - q).abs() <= 5 * torch.sqrt(q * (1 - q) / 4000) + 1e-9)
    demo = digits_cnn(pretrained=True).eval()
    x, y = test_set(50)
    assert torch.equal(expected_correct(demo, x, y, 3), (demo(x).argmax(1) == y).float())


def test_the_bounded_mean_interval_covers_at_the_stated_rate() -> None:
    """Per-example shares of 32 draws with Beta-distributed accuracies: over 400 seeds and
    three sizes, the interval misses the true mean at most 5% of the time (plus two standard
    errors); its rejection of the truth is computed for all seeds at once."""
    alpha, seeds = 0.05, 400
    truth = 5 / (5 + 3)
    for n in (20, 100, 400):
        rng = np.random.default_rng(n)
        shares = rng.binomial(32, rng.beta(5, 3, (seeds, n))) / 32
        up, down = log_capital(shares, truth, alpha)
        hedged = np.logaddexp(up, down) - np.log(2.0)
        misses = (hedged >= np.log(1 / alpha)).any(axis=-1).mean()
        assert misses <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / seeds), (n, misses)
    low, high = bounded_mean_interval(shares[0], 0.95)
    assert low <= shares[0].mean() <= high and high - low < 0.1


def test_the_noisy_input_model_gets_its_expected_robust_accuracy_under_auto() -> None:
    """The issue's case: Gaussian input noise (sigma 0.15), first 100 test digits, L-inf eps
    0.1. A 100-step PGD averaging the loss over 20 draws, judged by fresh draws, gives 0.545;
    single-draw AutoAttack gave 0.03."""
    x, y = test_set(100)
    with pytest.warns(robustness_checks.RobustnessWarning, match="the model is random"):
        result = robustness_checks.adversarial(
            noisy_input_cnn(0.15), (x, y), method="auto", eps=0.1, min_accuracy=0.3
        )
    assert 0.49 <= result.value <= 0.57
    assert result.condition == "under AutoAttack-rand-Linf eps=0.1"
    assert result.details.random_model.eot == 20 and result.details.random_model.accuracy == (
        "expected"
    )
    assert result.details.model_randomness.random
    assert result.warnings[0].startswith("the model is random")
    low, high = result.ci
    assert low < result.value < high and high - low < 0.25


def test_auto_points_hold_up_under_fresh_draws() -> None:
    """Re-judging auto's points with 64 other draws gives the same expected accuracy: the
    figure is a property of the points, not of lucky draws during the attack."""
    x, y = test_set(60)
    model = dropout_on_cnn()
    torch.manual_seed(1)
    result = run_attack(model, x, y, method="auto", version="rand", eps=0.1)
    torch.manual_seed(2)
    again = expected_correct(model, result.adversarial[0], y, 64)
    # The two estimates of a mean of 60 shares of 32 and 64 draws differ by little.
    assert abs(float(again.mean()) - float(result.accuracy(y))) < 0.04
    assert result.forward_passes > 2 * 100 * 20 * 60 * 0.5  # two 100-step stages of 20 draws


def test_a_uniform_draw_at_a_tiny_eps_moves_accuracy_less_than_its_interval() -> None:
    x, y = test_set(100)
    result = robustness_checks.adversarial(
        noisy_input_cnn(0.15), (x, y), method="uniform", eps=1e-6, restarts=50
    )
    drop = result.details.per_eps[0]
    assert drop.accuracy_drop_ci[0] <= 0.0 <= drop.accuracy_drop_ci[1]
    assert abs(drop.accuracy_drop) < 0.03


def test_majority_counting_and_an_explicit_eot_on_a_deterministic_model() -> None:
    x, y = test_set(60)
    demo = digits_cnn(pretrained=True).eval()
    plain = robustness_checks.adversarial(demo, (x, y), method="pgd", eps=0.1, steps=5)
    treated = robustness_checks.adversarial(
        demo, (x, y), method="pgd", eps=0.1, steps=5, eot=2, random_accuracy="majority"
    )
    assert treated.details.random_model.eot == 2
    assert not treated.details.model_randomness.random
    # Averaging two identical draws changes nothing: the same points, the same counts.
    assert treated.value == plain.value and treated.ci == plain.ci


def _registered_types() -> list[str]:
    return sorted(CHECK_TYPES)


@pytest.mark.parametrize("name", _registered_types())
def test_same_seed_same_values_on_a_dropout_on_model(name: str) -> None:
    """Every check type, on a model whose input dropout stays on: three runs with the same seed
    give identical results (timings aside); the model is recorded as random."""
    case = CHECK_TYPES[name].gate_case_list()[0]

    def run(seed: int) -> dict:
        model = DropoutOn(case.released()).eval()
        params = {**case.params, **case.options}
        with pytest.warns(robustness_checks.RobustnessWarning):
            result = robustness_checks.run_check(name, model, case.data(), seed=seed, **params)
        assert result.outcome != "error", result.error
        return _values(result)

    first = run(7)
    assert first["details"]["model_randomness"]["random"]
    assert first["warnings"][0].startswith("the model is random")
    assert run(7) == first
    assert run(7) == first
    if name in ("adversarial", "calibration"):
        assert run(8)["value"] != first["value"]


def test_the_docs_list_what_every_check_type_does_with_a_random_model() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "adversarial.md").read_text()
    for name, entry in CHECK_TYPES.items():
        assert f"| `{name}` | {entry.random_model} |" in page, name


def test_mc_dropout_sampling_is_not_the_model_being_random() -> None:
    x, y = test_set(60)
    demo = digits_cnn(pretrained=True).eval()  # nn.Dropout modules, off in eval mode
    runs = [
        robustness_checks.selective(
            demo,
            (x, y),
            coverage=0.5,
            min_accuracy=0.0,
            uncertainty={"method": "mc_dropout", "samples": 4},
            bootstrap=10,
        )
        for _ in range(2)
    ]
    assert runs[0].warnings == [] and not runs[0].details.model_randomness.random
    assert _values(runs[1]) == _values(runs[0])  # the sampler's masks repeat under the seed


def test_three_plugin_runs_with_the_same_seed_write_the_same_json(
    pytester: pytest.Pytester,
) -> None:
    import json

    pytester.makefile(
        ".robustness.yaml",
        spec="""
model: {factory: robustness_checks.demo.randomised:dropout_on_cnn}
data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 40}}
seed: 3
checks:
  - {name: attacked, type: adversarial, attack: {method: pgd, steps: 5, eps: 0.1, eot: 4},
     min_accuracy: 0.2}
  - {name: calibrated, type: calibration, bootstrap: 20}
""",
    )
    documents = []
    for run in range(3):
        result = pytester.runpytest("-p", "no:cacheprovider", f"--robustness-json=r{run}.json")
        result.assert_outcomes(passed=2)
        records = json.loads((pytester.path / f"r{run}.json").read_text())["results"]
        documents.append([{k: v for k, v in r.items() if k not in TIMING} for r in records])
    assert documents[0] == documents[1] == documents[2]
    attacked = documents[0][0]
    assert attacked["details"]["model_randomness"]["random"]
    assert attacked["details"]["random_model"] == {"eot": 4, "draws": 32, "accuracy": "expected"}
