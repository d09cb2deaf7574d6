"""Calibration metrics against REFERENCE.md vectors, hand computations and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustness_checks.metrics import calibration as cal
from robustness_checks.metrics.intervals import bootstrap_interval


def test_reference_vector_closed_last_bin() -> None:
    # Binary probabilities P(y=1) [.95, 1.0] with targets [1, 0]: top-label confidences .95 and
    # 1.0 share the last bin (1.0 included), accuracy 0.5, mean confidence 0.975.
    probabilities = np.array([[0.05, 0.95], [0.0, 1.0]])
    targets = np.array([1, 0])
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    assert cal.expected_calibration_error(confidence, correct, 15) == pytest.approx(0.475)


def test_reference_vector_zero_confidence_in_first_bin() -> None:
    assert cal.expected_calibration_error(np.array([0.0]), np.array([1.0]), 15) == 1.0


def test_reference_vector_equal_mass() -> None:
    confidence = np.array([0.1, 0.2, 0.3, 0.9])
    correct = np.array([0, 0, 1, 1])
    assert cal.adaptive_calibration_error(confidence, correct, 2) == pytest.approx(0.275)


def test_equal_mass_ties_do_not_depend_on_input_order() -> None:
    confidence = np.array([0.5, 0.5, 0.5, 0.5, 0.9, 0.9])
    correct = np.array([1, 0, 1, 0, 1, 0])
    expected = cal.adaptive_calibration_error(confidence, correct, 3)
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(6)
        assert cal.adaptive_calibration_error(confidence[order], correct[order], 3) == expected


def test_bin_edges_are_left_open_right_closed() -> None:
    bins = cal.equal_width_bins(np.array([0.0, 0.1, 0.1 + 1e-12, 0.5, 1.0]), 10)
    assert bins.tolist() == [0, 0, 1, 4, 9]


def test_calibrated_samples_have_ece_near_zero() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.2, 1.0, 200_000)
    correct = rng.uniform(size=confidence.shape) < confidence
    assert cal.expected_calibration_error(confidence, correct, 15) < 0.005


def test_ece_by_hand() -> None:
    # Two bins of 5: (0, .5] holds .2 (wrong) and .4 (right); (.5, 1] holds .6, .8 (right), 1.0
    # (wrong). Bin 1: |0.5 - 0.3| * 2/5; bin 2: |2/3 - 0.8| * 3/5.
    confidence = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    correct = np.array([0, 1, 1, 1, 0])
    expected = 0.4 * 0.2 + 0.6 * abs(2 / 3 - 0.8)
    assert cal.expected_calibration_error(confidence, correct, 2) == pytest.approx(expected)
    assert cal.maximum_calibration_error(confidence, correct, 2) == pytest.approx(0.2)


def _random_predictions(seed: int, n: int = 500, classes: int = 5):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=generator)
    return torch.softmax(logits, dim=1), labels


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_and_mce_match_torchmetrics(seed: int, bins: int) -> None:
    functional = pytest.importorskip("torchmetrics.functional.classification")
    probabilities, labels = _random_predictions(seed)
    confidence, predicted = probabilities.max(dim=1)
    edges = np.linspace(0, 1, bins + 1)
    assert not np.isin(confidence.numpy(), edges).any()  # the conventions differ only on edges
    correct = (predicted == labels).numpy()
    for norm, ours in (
        ("l1", cal.expected_calibration_error),
        ("max", cal.maximum_calibration_error),
    ):
        theirs = functional.multiclass_calibration_error(
            probabilities.float(), labels, num_classes=5, n_bins=bins, norm=norm
        )
        assert ours(confidence.numpy(), correct, bins) == pytest.approx(float(theirs), abs=1e-6)


def test_classwise_ece_by_hand() -> None:
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1])
    # Class 0, 2 bins: (0, .5] holds p=.3 (not class 0): |0 - .3| * 1/3;
    #                  (.5, 1] holds .9 (class 0), .6 (not): |.5 - .75| * 2/3.
    class0 = 0.3 / 3 + 0.25 * 2 / 3
    # Class 1: (0, .5] holds .1 (not), .4 (class 1): |.5 - .25| * 2/3; (.5, 1]: .7 (yes) .3/3.
    class1 = 0.25 * 2 / 3 + 0.3 / 3
    value = cal.classwise_calibration_error(probabilities.T, labels, 2)
    assert value == pytest.approx((class0 + class1) / 2)


def test_brier_and_nll_match_direct_computation() -> None:
    probabilities, labels = _random_predictions(1, n=50)
    p = probabilities.numpy()
    y = labels.numpy()
    direct = np.mean([np.sum((p[i] - np.eye(5)[y[i]]) ** 2) for i in range(len(y))])
    assert cal.brier_score(p.T, y) == pytest.approx(direct)
    nll = torch.nn.functional.nll_loss(probabilities.log(), labels).item()
    assert cal.negative_log_likelihood(np.log(p[np.arange(len(y)), y])) == pytest.approx(nll)


def test_metrics_accept_leading_batch_axes() -> None:
    rng = np.random.default_rng(3)
    confidence = rng.uniform(size=(4, 3, 100))
    correct = rng.uniform(size=(4, 3, 100)) < 0.7
    batched = cal.expected_calibration_error(confidence, correct, 15)
    assert batched.shape == (4, 3)
    assert batched[2, 1] == pytest.approx(
        cal.expected_calibration_error(confidence[2, 1], correct[2, 1], 15)
    )
    adaptive = cal.adaptive_calibration_error(confidence, correct, 7)
    assert adaptive[3, 0] == pytest.approx(
        cal.adaptive_calibration_error(confidence[3, 0], correct[3, 0], 7)
    )


def test_reliability_bins_sum_to_the_data() -> None:
    confidence = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    correct = np.array([0, 1, 1, 1, 0])
    rows = cal.reliability_bins(confidence, correct, 2)
    assert [(r["lo"], r["hi"], r["count"]) for r in rows] == [(0.0, 0.5, 2), (0.5, 1.0, 3)]
    assert rows[1]["accuracy"] == pytest.approx(2 / 3)
    assert rows[1]["confidence"] == pytest.approx(0.8)


def test_bootstrap_interval_of_a_mean_matches_the_normal_interval() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=2000)
    low, high = bootstrap_interval(
        lambda v: v.mean(axis=-1),
        [values],
        confidence=0.95,
        rng=np.random.default_rng(1),
        resamples=4000,
    )
    half_width = 1.96 * values.std() / np.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half_width, abs=0.006)
    assert high == pytest.approx(values.mean() + half_width, abs=0.006)


def test_bootstrap_is_reproducible_and_needs_two_examples() -> None:
    values = np.arange(10.0)
    first = bootstrap_interval(
        lambda v: v.mean(axis=-1), [values], confidence=0.9, rng=np.random.default_rng(5)
    )
    second = bootstrap_interval(
        lambda v: v.mean(axis=-1), [values], confidence=0.9, rng=np.random.default_rng(5)
    )
    assert first == second
    assert (
        bootstrap_interval(
            lambda v: v.mean(axis=-1),
            [np.array([1.0])],
            confidence=0.9,
            rng=np.random.default_rng(5),
        )
        is None
    )
