"""entropy_trend, selective, ood and failure_prediction: known answers and planted faults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

import robustness_checks
from robustness_checks.metrics import ranking


class FixedLogits(torch.nn.Module):
    """Returns stored logits for each input; inputs carry their index in the first feature."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].round().long()]


class Tempered(torch.nn.Module):
    """A linear classifier whose temperature depends on how far inputs are from 0.5."""

    def __init__(self, dim: int, sharpen: bool):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(3, dim, generator=generator))
        self.sharpen = sharpen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distance = 20 * (x - 0.5).abs().flatten(1).mean(dim=1, keepdim=True)
        logits = x.flatten(1) @ self.weight.T
        return logits * (1 + distance) if self.sharpen else logits / (1 + distance)


def near_half(count: int = 60, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = 0.5 + 0.01 * torch.randn(count, dim, generator=generator)
    return x, torch.randint(0, 3, (count,), generator=generator)


def indexed(count: int) -> torch.Tensor:
    return torch.arange(count, dtype=torch.float32)[:, None]


def test_entropy_that_falls_with_eps_fails_and_says_so() -> None:
    x, y = near_half()
    result = robustness_checks.entropy_trend(
        Tempered(16, sharpen=True),
        (x, y),
        eps=[0.0, 0.1, 0.2, 0.3],
        attack={"method": "gaussian"},
        bounds=(0.0, 1.0),
    )
    assert not result
    means = result.details["mean"]
    assert means == sorted(means, reverse=True)  # overconfident as the noise grows
    assert result.message.startswith("predictive_entropy falls from")
    assert "against the expected increasing trend" in result.message
    assert len(result.details["accuracy"]) == 4


def test_entropy_that_rises_with_eps_passes() -> None:
    x, y = near_half()
    result = robustness_checks.entropy_trend(
        Tempered(16, sharpen=False),
        (x, y),
        eps=[0.0, 0.1, 0.2, 0.3],
        attack={"method": "gaussian"},
        bounds=(0.0, 1.0),
    )
    assert result, result.message
    assert result.value < 1e-6 and result.threshold == pytest.approx(0.05)
    assert "predictive_entropy rises with eps" in result.message
    for mean, (low, high) in zip(result.details["mean"], result.details["mean_ci"], strict=True):
        assert low <= mean <= high
    decreasing = robustness_checks.entropy_trend(
        Tempered(16, sharpen=True),
        (x, y),
        eps=[0.0, 0.1, 0.2, 0.3],
        attack={"method": "gaussian"},
        expect="decreasing",
    )
    assert decreasing, decreasing.message


def test_no_trend_fails_as_not_significant() -> None:
    x, y = near_half()
    flat = FixedLogits(torch.zeros(1, 3))
    result = robustness_checks.entropy_trend(
        flat, (x * 0, y), eps=[0.0, 0.1], attack={"method": "uniform"}
    )
    assert not result and "shows no significant increasing trend" in result.message


def separable(count: int = 200, seed: int = 0):
    """Logits whose max-softmax confidence is known per example, half of them wrong."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.4, 0.99, count)
    labels = rng.integers(0, 2, count)
    predicted = np.where(rng.uniform(size=count) < confidence, labels, 1 - labels)
    probabilities = np.zeros((count, 2))
    probabilities[np.arange(count), predicted] = confidence
    probabilities[np.arange(count), 1 - predicted] = 1 - confidence
    probabilities = np.clip(probabilities, 1e-6, 1)
    return torch.tensor(np.log(probabilities), dtype=torch.float32), torch.tensor(labels)


def test_selective_matches_the_ranking_metrics() -> None:
    logits, labels = separable()
    model = FixedLogits(logits)
    result = robustness_checks.selective(
        model, (indexed(200), labels), coverage=0.5, min_accuracy=0.5, bounds=None
    )
    probabilities = logits.softmax(dim=1).numpy()
    uncertainty = 1 - probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels.numpy()
    assert result.value == pytest.approx(ranking.selective_accuracy(uncertainty, correct, 0.5))
    assert result.details["aurc"] == pytest.approx(ranking.aurc(uncertainty, correct))
    assert result.ci[0] <= result.value <= result.ci[1]
    assert result.value > correct.mean()  # abstaining on uncertain inputs helps here


def test_selective_with_a_score_that_points_the_wrong_way_fails() -> None:
    logits, labels = separable()
    probabilities = logits.softmax(dim=1)
    wrong = probabilities.argmax(dim=1) != labels
    # Plant: swap the two classes' logits so errors become the most confident predictions.
    flipped = torch.where(wrong[:, None], logits * 3, logits / 3)
    result = robustness_checks.selective(
        FixedLogits(flipped), (indexed(200), labels), coverage=0.3, min_accuracy=0.9, bounds=None
    )
    assert not result
    assert "is below min_accuracy 0.9" in result.message
    assert "keeping the 0.3 most certain by confidence" in result.message


def test_ood_auroc_matches_sklearn_and_planted_overlap_fails() -> None:
    rng = np.random.default_rng(3)
    in_logits = torch.tensor(rng.normal(0, 3, (150, 4)), dtype=torch.float32)
    out_logits = torch.tensor(rng.normal(0, 1, (100, 4)), dtype=torch.float32)
    model = FixedLogits(torch.cat([in_logits, out_logits]))
    labels = torch.zeros(150, dtype=torch.long)
    ood_inputs = indexed(250)[150:]
    result = robustness_checks.ood(
        model,
        (indexed(150), labels),
        ood_inputs,
        score="energy",
        metric="auroc",
        min=0.5,
        bounds=None,
    )
    energy = -torch.logsumexp(torch.cat([in_logits, out_logits]), dim=1).numpy()
    truth = np.r_[np.zeros(150), np.ones(100)]
    assert result.value == pytest.approx(roc_auc_score(truth, energy))
    assert result.details["aupr"] == pytest.approx(average_precision_score(truth, energy))
    overlap = robustness_checks.ood(
        model, (indexed(150), labels), indexed(150), score="msp", min=0.9, bounds=None
    )
    assert not overlap and overlap.value == pytest.approx(0.5)
    assert "is below min 0.9" in overlap.message


def test_failure_prediction_vector_and_planted_failure() -> None:
    logits, labels = separable(seed=4)
    result = robustness_checks.failure_prediction(
        FixedLogits(logits), (indexed(200), labels), metric="aupr_error", min=0.2, bounds=None
    )
    probabilities = logits.softmax(dim=1).numpy()
    errors = probabilities.argmax(axis=1) != labels.numpy()
    expected = average_precision_score(errors, 1 - probabilities.max(axis=1))
    assert result.value == pytest.approx(expected)
    assert result.details["error_rate"] == pytest.approx(errors.mean())
    assert result
    wrong = torch.tensor(errors)
    planted = torch.where(wrong[:, None], logits * 3, logits / 3)
    failing = robustness_checks.failure_prediction(
        FixedLogits(planted), (indexed(200), labels), metric="auroc", min=0.6, bounds=None
    )
    assert not failing and failing.value < 0.5


def test_ensemble_needs_members() -> None:
    x, y = near_half()
    with pytest.raises(robustness_checks.RobustnessError, match=r"model\.ensemble"):
        robustness_checks.selective(Tempered(16, True), (x, y), uncertainty={"method": "ensemble"})


def test_demo_uncertainty_checks_run_with_mc_dropout_and_ensemble() -> None:
    from robustness_checks.demo.digits import noise_images, test_set
    from robustness_checks.demo.model import digits_cnn

    model = digits_cnn(pretrained=True)
    members = [digits_cnn(pretrained=True, seed=s) for s in (1, 2)]
    data = test_set(limit=120)
    trend = robustness_checks.entropy_trend(
        model,
        data,
        eps=[0.0, 0.05, 0.1],
        uncertainty={"method": "ensemble"},
        metric="mutual_information",
        ensemble=members,
    )
    assert trend, trend.message
    # FGSM: a clean pass with its gradient and one pass per eps; then 3 eps x 2 members.
    assert trend.evaluations == 120 * (1 + 3 + 3 * 2)
    far = robustness_checks.ood(
        model,
        data,
        noise_images(60)[0],
        score="mutual_information",
        uncertainty={"method": "mc_dropout", "samples": 8},
        min=0.8,
    )
    assert far, far.message
