"""Release comparison: the paired interval and the non-inferiority decision."""

from __future__ import annotations

import pytest
import torch

import robustness_checks
from robustness_checks.gating.release import paired_difference_interval


class Answers(torch.nn.Module):
    """Predicts the stored class for each input (inputs carry their index)."""

    def __init__(self, predictions: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", torch.nn.functional.one_hot(predictions, 3).float() * 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0].long()]


def test_interval_maps_clopper_pearson_of_the_discordant_pairs() -> None:
    from scipy import stats

    low, high = paired_difference_interval(10, 30, 400, 0.95)
    exact = stats.binomtest(10, 40).proportion_ci(0.95, method="exact")
    assert (low, high) == pytest.approx((0.1 * (2 * exact.low - 1), 0.1 * (2 * exact.high - 1)))
    assert low < (10 - 30) / 400 < high
    assert paired_difference_interval(0, 0, 50, 0.95) == (0.0, 0.0)


def test_candidate_worse_by_more_than_the_margin_fails() -> None:
    labels = torch.zeros(400, dtype=torch.long)
    released = labels.clone()
    released[:20] = 1  # 95% right
    candidate = labels.clone()
    candidate[:60] = 2  # 85% right: it lost 40 examples the released model had right
    x = torch.arange(400, dtype=torch.float32)[:, None]
    result = robustness_checks.compare_accuracy(
        Answers(candidate), Answers(released), (x, labels), max_loss=0.02, bounds=None
    )
    assert not result
    assert result.value == pytest.approx(-0.1)
    assert result.details["gains"] == 0 and result.details["losses"] == 40
    assert "may be worse than -0.02" in result.message
    same = robustness_checks.compare_accuracy(
        Answers(released), Answers(released), (x, labels), max_loss=0.0, bounds=None
    )
    assert same and same.ci == (0.0, 0.0)


def test_comparison_under_attack_runs_on_the_demo_models() -> None:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    result = robustness_checks.compare_accuracy(
        digits_cnn(pretrained=True, seed=1),
        digits_cnn(pretrained=True),
        test_set(limit=100),
        attack={"method": "fgsm", "eps": 0.05},
        max_loss=0.5,
    )
    assert result.ci[0] <= result.value <= result.ci[1]
    assert "accuracy under fgsm" in result.message
