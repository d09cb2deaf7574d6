"""Ranking metrics: REFERENCE vectors, scikit-learn agreement, and order independence under ties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn import metrics as sk

from robustness_checks.metrics.ranking import (
    aupr,
    aurc,
    auroc,
    batch_aupr,
    batch_aurc,
    batch_auroc,
    batch_e_aurc,
    batch_fpr_at_tpr,
    batch_selective_accuracy,
    e_aurc,
    fpr_at_tpr,
    oracle_aurc,
    risk_coverage_curve,
    roc_curve,
    selective_accuracy,
)

ID_SCORES = np.r_[np.arange(19), 100.0]
OOD_SCORES = np.arange(50, 70.0)


def tied_scores(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Integer scores from a small range, so most values are tied."""
    negatives = rng.integers(0, 8, size=int(rng.integers(1, 60))).astype(float)
    positives = rng.integers(2, 10, size=int(rng.integers(1, 60))).astype(float)
    return negatives, positives


def labelled(negatives: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[negatives, positives], np.r_[np.zeros(negatives.size), np.ones(positives.size)]


def test_reference_ood_vector_fpr95() -> None:
    assert fpr_at_tpr(ID_SCORES, OOD_SCORES, 0.95) == pytest.approx(0.05)


def test_reference_ood_vector_auroc() -> None:
    scores, labels = labelled(ID_SCORES, OOD_SCORES)
    # REFERENCE.md gives 0.975, but the ID outlier 100 outranks all 20 OOD scores: 20 of the 400
    # pairs are discordant, so AUROC is 0.95 (scikit-learn agrees). 0.975 is what an outlier in
    # the middle of the OOD range (59.5: 10 discordant pairs) gives, with the same FPR95 of 0.05.
    assert auroc(ID_SCORES, OOD_SCORES) == pytest.approx(0.95)
    assert auroc(ID_SCORES, OOD_SCORES) == pytest.approx(sk.roc_auc_score(labels, scores))
    middle = np.r_[np.arange(19), 59.5]
    assert auroc(middle, OOD_SCORES) == pytest.approx(0.975)
    assert fpr_at_tpr(middle, OOD_SCORES) == pytest.approx(0.05)


@pytest.mark.parametrize("uncertainty", [lambda c: -c, lambda c: 1.0 - c], ids=["neg", "one_minus"])
def test_reference_aurc_vector(uncertainty) -> None:
    confidences = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 0, 0])
    assert aurc(uncertainty(confidences), correct) == pytest.approx((0 + 0 + 1 / 3 + 1 / 2) / 4)
    assert aurc(uncertainty(confidences), correct) == pytest.approx(0.2083, abs=5e-5)
    # That ranking already rejects both errors first, so it is optimal.
    assert e_aurc(uncertainty(confidences), correct) == pytest.approx(0.0)


@pytest.mark.parametrize("seed", range(40))
def test_auroc_aupr_match_sklearn_with_ties(seed: int) -> None:
    negatives, positives = tied_scores(np.random.default_rng(seed))
    scores, labels = labelled(negatives, positives)
    assert auroc(negatives, positives) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    expected = sk.average_precision_score(labels, scores)
    assert aupr(negatives, positives) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("tpr", [0.95, 0.5, 1.0])
def test_fpr_at_tpr_matches_sklearn_roc_curve(seed: int, tpr: float) -> None:
    negatives, positives = tied_scores(np.random.default_rng(seed))
    scores, labels = labelled(negatives, positives)
    fprs, tprs, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    expected = fprs[np.argmax(tprs >= tpr)]
    assert fpr_at_tpr(negatives, positives, tpr) == pytest.approx(expected, abs=1e-12)


def test_continuous_scores_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    negatives, positives = rng.normal(size=300), rng.normal(0.7, size=200)
    scores, labels = labelled(negatives, positives)
    assert auroc(negatives, positives) == pytest.approx(sk.roc_auc_score(labels, scores))
    assert aupr(negatives, positives) == pytest.approx(sk.average_precision_score(labels, scores))


@pytest.mark.parametrize("seed", range(5))
def test_roc_curve_matches_sklearn(seed: int) -> None:
    negatives, positives = tied_scores(np.random.default_rng(seed))
    scores, labels = labelled(negatives, positives)
    fpr, tpr = roc_curve(negatives, positives)
    expected_fpr, expected_tpr, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(negatives, positives))


def test_batch_rows_match_single_rows_and_bootstrap_edge_cases() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=(6, 30)).astype(float)
    positive = rng.random((6, 30)) < 0.4
    positive[4] = False  # a resample without positives
    for row, (s, p) in enumerate(zip(scores, positive, strict=True)):
        single = [auroc(s[~p], s[p]), aupr(s[~p], s[p]), fpr_at_tpr(s[~p], s[p])]
        batched = [f(scores, positive)[row] for f in (batch_auroc, batch_aupr, batch_fpr_at_tpr)]
        if row == 4:
            assert np.isnan(batched).all()
        else:
            np.testing.assert_allclose(batched, single)


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0.0, np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="NaN"):
        aurc(np.array([0.0, np.nan]), np.array([1, 0]))


def tie_break_average(uncertainty: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Selective accuracy averaged over every order of the inputs tied at the cut."""
    k = math.ceil(coverage * uncertainty.size)
    cut = np.sort(uncertainty)[k - 1]
    below = correct[uncertainty < cut]
    tied = correct[uncertainty == cut]
    picks = [
        below.sum() + sum(tied[list(chosen)])
        for chosen in itertools.combinations(range(tied.size), k - below.size)
    ]
    return float(np.mean(picks) / k)


@pytest.mark.parametrize("seed", range(20))
def test_selective_metrics_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 12))
    uncertainty = rng.integers(0, 4, size=count).astype(float)
    correct = rng.random(count) < 0.6
    risks = [1 - tie_break_average(uncertainty, correct, k / count) for k in range(1, count + 1)]
    assert aurc(uncertainty, correct) == pytest.approx(np.mean(risks))
    for coverage in (0.1, 0.25, 0.5, 0.8, 1.0):
        assert selective_accuracy(uncertainty, correct, coverage) == pytest.approx(
            tie_break_average(uncertainty, correct, coverage)
        )


@pytest.mark.parametrize("seed", range(20))
def test_selective_metrics_do_not_depend_on_input_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = 200
    uncertainty = rng.integers(0, 6, size=count).astype(float)
    correct = rng.random(count) < 0.7
    reference = (
        aurc(uncertainty, correct),
        e_aurc(uncertainty, correct),
        selective_accuracy(uncertainty, correct, 0.37),
        *risk_coverage_curve(uncertainty, correct),
    )
    for _ in range(5):
        perm = rng.permutation(count)
        permuted = (
            aurc(uncertainty[perm], correct[perm]),
            e_aurc(uncertainty[perm], correct[perm]),
            selective_accuracy(uncertainty[perm], correct[perm], 0.37),
            *risk_coverage_curve(uncertainty[perm], correct[perm]),
        )
        for got, want in zip(permuted, reference, strict=True):
            np.testing.assert_array_equal(got, want)


def test_risk_coverage_curve_groups_ties() -> None:
    uncertainty = np.array([0.3, 0.1, 0.3, 0.2, 0.3])
    correct = np.array([0, 1, 1, 1, 0])
    coverage, risk = risk_coverage_curve(uncertainty, correct)
    np.testing.assert_allclose(coverage, [0.2, 0.4, 1.0])
    np.testing.assert_allclose(risk, [0.0, 0.0, 0.4])
    # k = 1, 2 have risk 0; inside the tied group of 3 (2 errors) the expected errors grow by
    # 2/3 per input: risks (2/3)/3, (4/3)/4 and 2/5.
    assert aurc(uncertainty, correct) == pytest.approx((2 / 9 + 1 / 3 + 2 / 5) / 5)


def test_selective_accuracy_cut_and_coverage_rules() -> None:
    uncertainty = np.array([0.0, 1.0, 1.0, 1.0])
    correct = np.array([1, 1, 0, 0])
    # k = ceil(0.5 * 4) = 2: the certain input plus 1 of the 3 tied ones (1/3 of them correct).
    assert selective_accuracy(uncertainty, correct, 0.5) == pytest.approx((1 + 1 / 3) / 2)
    # k = ceil(0.3 * 4) = 2 as well; 0.25 * 4 is exactly 1 despite rounding.
    assert selective_accuracy(uncertainty, correct, 0.3) == pytest.approx((1 + 1 / 3) / 2)
    assert selective_accuracy(uncertainty, correct, 0.25) == 1.0
    assert selective_accuracy(uncertainty, correct, 1.0) == pytest.approx(0.5)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="coverage"):
            selective_accuracy(uncertainty, correct, bad)


def test_e_aurc_and_batch_rows() -> None:
    rng = np.random.default_rng(11)
    uncertainty = rng.integers(0, 5, size=(8, 40)).astype(float)
    correct = rng.random((8, 40)) < 0.7
    batched = (
        batch_aurc(uncertainty, correct),
        batch_e_aurc(uncertainty, correct),
        batch_selective_accuracy(uncertainty, correct, 0.6),
    )
    for row in range(8):
        u, c = uncertainty[row], correct[row]
        assert batched[0][row] == pytest.approx(aurc(u, c))
        assert batched[1][row] == pytest.approx(e_aurc(u, c))
        assert batched[2][row] == pytest.approx(selective_accuracy(u, c, 0.6))
        assert batched[1][row] >= -1e-12
        # The oracle ranking itself has zero excess.
        assert e_aurc((~c).astype(float), c) == pytest.approx(0.0, abs=1e-12)
        assert aurc((~c).astype(float), c) == pytest.approx(oracle_aurc(c))
