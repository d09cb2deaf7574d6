"""Ranking metrics: REFERENCE vectors, scikit-learn agreement, order independence under ties, the
weighted bootstrap against the index bootstrap, and the intervals' building blocks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn import metrics as sk

from robustness_checks.checks.failure_prediction import measure_failure_prediction
from robustness_checks.checks.ood import measure_ood
from robustness_checks.checks.selective import measure_selective
from robustness_checks.errors import InsufficientData
from robustness_checks.metrics import intervals, ranking_intervals, ranking_resampled
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
from robustness_checks.validity.ranking import (
    average_precision,
    shift_for_aupr,
    shift_for_auroc,
    shift_for_fpr95,
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


# --- measurement with intervals ------------------------------------------------------------------

MEASURE = {"resamples": 1000, "confidence": 0.95}


def scores_pair(rng: np.random.Generator, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    """Negative and positive scores, from a few integers when `tied`."""
    if tied:
        return tied_scores(rng)
    return rng.normal(size=int(rng.integers(2, 50))), rng.normal(1.0, size=int(rng.integers(2, 50)))


@pytest.mark.parametrize("seed", range(12))
def test_weighted_separation_equals_the_index_bootstrap(seed: int) -> None:
    rng = np.random.default_rng(seed)
    negatives, positives = scores_pair(rng, tied=seed % 2 == 0)
    scores, labels = labelled(negatives, positives)
    item = ranking_resampled.separated(negatives, positives)
    sizes = (negatives.size, positives.size) if seed % 3 else (scores.size,)
    indices = intervals.bootstrap_indices(rng, sizes, 64)
    counts = intervals.resample_counts(item.slot[indices], scores.size)
    found = ranking_resampled.separation_from_counts(
        item, counts[:, : negatives.size], counts[:, negatives.size :]
    )
    drawn_scores, drawn_labels = scores[indices], labels[indices].astype(bool)
    expected = {
        "auroc": batch_auroc(drawn_scores, drawn_labels),
        "aupr": batch_aupr(drawn_scores, drawn_labels),
        "fpr95": batch_fpr_at_tpr(drawn_scores, drawn_labels),
    }
    for name, values in expected.items():
        np.testing.assert_allclose(found[name], values, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", range(12))
def test_weighted_selective_equals_the_index_bootstrap(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 80))
    tied = seed % 2 == 0
    uncertainty = rng.integers(0, 5, count).astype(float) if tied else rng.random(count)
    correct = rng.random(count) < 0.7
    item = ranking_resampled.ranked(uncertainty, correct)
    indices = intervals.bootstrap_indices(rng, (count,), 64)
    found = ranking_resampled.selective_from_counts(
        item, intervals.resample_counts(item.position[indices], count)
    )
    drawn_uncertainty, drawn_correct = uncertainty[indices], correct[indices]
    np.testing.assert_allclose(
        found["aurc"], batch_aurc(drawn_uncertainty, drawn_correct), atol=1e-12
    )
    np.testing.assert_allclose(
        found["e_aurc"], batch_e_aurc(drawn_uncertainty, drawn_correct), atol=1e-12
    )


def test_drawn_counts_are_the_counts_of_the_index_draws() -> None:
    drawn = intervals.drawn_counts(np.random.default_rng(4), 37, 9)
    indices = intervals.bootstrap_indices(np.random.default_rng(4), (37,), 9)
    np.testing.assert_array_equal(drawn, intervals.resample_counts(indices))
    assert (drawn.sum(axis=1) == 37).all()


@pytest.mark.parametrize("seed", range(10))
def test_closed_form_jackknife_equals_leaving_each_example_out(seed: int) -> None:
    rng = np.random.default_rng(seed)
    negatives, positives = scores_pair(rng, tied=seed % 2 == 0)
    jackknife = ranking_resampled.separation_jackknife(
        ranking_resampled.separated(negatives, positives)
    )
    negatives, positives = np.sort(negatives)[::-1], np.sort(positives)[::-1]
    for name, metric in (("auroc", auroc), ("aupr", aupr)):
        without_negative = [
            metric(np.delete(negatives, j), positives) for j in range(negatives.size)
        ]
        without_positive = [
            metric(negatives, np.delete(positives, j)) for j in range(positives.size)
        ]
        np.testing.assert_allclose(jackknife[name][0], without_negative, atol=1e-12)
        np.testing.assert_allclose(jackknife[name][1], without_positive, atol=1e-12)


def test_reference_vectors_through_the_measurement_functions() -> None:
    ood = measure_ood(ID_SCORES, OOD_SCORES, rng=np.random.default_rng(0), **MEASURE)
    assert ood["auroc"].value == pytest.approx(0.95)
    assert ood["fpr95"].value == pytest.approx(0.05)
    scores, labels = labelled(ID_SCORES, OOD_SCORES)
    assert ood["aupr"].value == pytest.approx(sk.average_precision_score(labels, scores))
    selective = measure_selective(
        -np.array([0.9, 0.8, 0.7, 0.6]),
        np.array([1, 1, 0, 0]),
        0.5,
        rng=np.random.default_rng(0),
        **MEASURE,
    )
    assert selective["aurc"].value == pytest.approx(0.2083, abs=5e-5)
    assert selective["e_aurc"].value == pytest.approx(0.0)
    assert selective["accuracy_at_coverage"].value == 1.0
    assert selective["accuracy"].value == 0.5
    for estimate in [*ood.values(), *selective.values()]:
        low, high = estimate.interval
        assert 0.0 <= low < high <= 1.0
        assert low <= estimate.value <= high


@pytest.mark.parametrize("seed", range(6))
def test_measurements_do_not_depend_on_input_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    negatives = rng.integers(0, 6, 150).astype(float)
    positives = rng.integers(2, 8, 120).astype(float)
    wrong = rng.random(270) < 0.3
    scores = np.r_[negatives, positives]

    def measured(order: np.ndarray, negative_order: np.ndarray, positive_order: np.ndarray):
        return (
            measure_ood(
                negatives[negative_order],
                positives[positive_order],
                rng=np.random.default_rng(1),
                **MEASURE,
            ),
            measure_failure_prediction(
                scores[order], wrong[order], rng=np.random.default_rng(1), **MEASURE
            ),
            measure_selective(
                scores[order], ~wrong[order], 0.6, rng=np.random.default_rng(1), **MEASURE
            ),
        )

    reference = measured(np.arange(270), np.arange(150), np.arange(120))
    shuffled = measured(rng.permutation(270), rng.permutation(150), rng.permutation(120))
    assert shuffled == reference


def test_one_metric_alone_is_measured_as_with_all_the_others() -> None:
    rng = np.random.default_rng(2)
    negatives, positives = rng.normal(size=300), rng.normal(1.5, size=200)
    every = measure_ood(negatives, positives, rng=np.random.default_rng(3), **MEASURE)
    for name in every:
        alone = measure_ood(
            negatives, positives, rng=np.random.default_rng(3), metrics=(name,), **MEASURE
        )
        assert alone == {name: every[name]}
    uncertainty, correct = rng.random(400), rng.random(400) < 0.8
    every = measure_selective(uncertainty, correct, 0.7, rng=np.random.default_rng(3), **MEASURE)
    for name in every:
        alone = measure_selective(
            uncertainty, correct, 0.7, rng=np.random.default_rng(3), metrics=(name,), **MEASURE
        )
        assert alone == {name: every[name]}


def test_data_that_cannot_support_the_statistic_raise_insufficient_data() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InsufficientData, match="no errors"):
        measure_failure_prediction(rng.random(30), np.zeros(30, bool), rng=rng, **MEASURE)
    with pytest.raises(InsufficientData, match="only errors"):
        measure_failure_prediction(rng.random(30), np.ones(30, bool), rng=rng, **MEASURE)
    with pytest.raises(InsufficientData):
        measure_ood(rng.random(30), np.array([]), rng=rng, **MEASURE)
    with pytest.raises(InsufficientData):
        measure_selective(np.array([]), np.array([], bool), 0.5, rng=rng, **MEASURE)


@pytest.mark.parametrize(
    ("negatives", "positives"),
    [([0.0], [1.0]), ([0.3] * 40, [0.3] * 40), ([0.0, 1.0], [0.5])],
    ids=["one_each", "all_equal", "three"],
)
def test_degenerate_samples_get_wide_intervals_never_zero_width(negatives, positives) -> None:
    found = measure_ood(
        np.array(negatives), np.array(positives), rng=np.random.default_rng(0), **MEASURE
    )
    for estimate in found.values():
        low, high = estimate.interval
        assert low < high and low <= estimate.value <= high
        assert "bootstrap" not in estimate.method
    assert found["auroc"].interval[1] - found["auroc"].interval[0] > 0.3


def test_a_perfect_detector_gets_bounds_that_can_pass_strict() -> None:
    rng = np.random.default_rng(1)
    found = measure_ood(rng.normal(size=1000), rng.normal(20, size=1000), rng=rng, **MEASURE)
    assert found["auroc"].value == found["aupr"].value == 1.0
    assert found["auroc"].interval[0] > 0.95 and found["aupr"].interval[0] > 0.95
    assert found["fpr95"].interval[1] < 0.005


def test_zero_errors_bound_aurc_from_the_error_rate() -> None:
    rng = np.random.default_rng(0)
    found = measure_selective(rng.random(1000), np.ones(1000, bool), None, rng=rng, **MEASURE)
    low, high = found["aurc"].interval
    rate = intervals.clopper_pearson(0, 1000, 0.95)[1]
    assert low == 0.0 and high == pytest.approx(rate * (1 - math.log(rate)))
    assert found["aurc"].method.startswith("conservative")


def test_aurc_bounds_are_the_worst_and_best_rankings() -> None:
    # For error rate r the oracle ranking has AURC r + (1 - r) log(1 - r) and the worst one
    # (errors most certain) r (1 + log(1 / r)); with r known exactly, the bounds are these.
    correct = np.r_[np.zeros(200, bool), np.ones(9800, bool)]
    worst = aurc(np.arange(10_000.0), correct)
    assert worst == pytest.approx(0.02 * (1 - math.log(0.02)), rel=2e-3)
    assert float(oracle_aurc(correct)) == pytest.approx(0.02 + 0.98 * math.log(0.98), rel=2e-2)
    low, high = ranking_intervals.aurc_bounds(200, 10_000, 0.95)
    assert low < float(oracle_aurc(correct)) and worst < high


def test_binomial_range_and_quantile_ranks_keep_their_error() -> None:
    from scipy import stats

    low, high = intervals.binomial_range(1000, 0.8, 0.0125)
    assert stats.binom.cdf(low - 1, 1000, 0.8) <= 0.00625 < stats.binom.cdf(low, 1000, 0.8)
    assert stats.binom.sf(high, 1000, 0.8) <= 0.00625 < stats.binom.sf(high - 1, 1000, 0.8)
    assert intervals.binomial_range(50, 1.0, 0.01) == (50, 50)
    j, k = intervals.quantile_ranks(200, 0.05, 0.0125)
    assert stats.binom.cdf(j - 1, 200, 0.05) <= 0.0125 < stats.binom.cdf(j, 200, 0.05)
    assert stats.binom.sf(k - 1, 200, 0.05) <= 0.0125 < stats.binom.sf(k - 2, 200, 0.05)
    assert intervals.quantile_ranks(20, 0.05, 0.0125) == (0, 5)  # P(none below) = 0.36


def test_selective_accuracy_interval_is_clopper_pearson_at_full_coverage() -> None:
    rng = np.random.default_rng(0)
    uncertainty, correct = rng.random(300), rng.random(300) < 0.9
    low, high = ranking_intervals.selective_accuracy_interval(uncertainty, correct, 1.0, 0.95)
    bounds = intervals.binomial_bounds(int(correct.sum()), 300, 0.0125)
    assert (low, high) == pytest.approx((float(bounds[0]), float(bounds[1])))


def test_correct_count_range_takes_the_worst_and_best_order_of_ties() -> None:
    # Sorted: 0.1 (correct), then 0.5 x 3 (one correct, two wrong), then 0.9 (correct).
    uncertainty = np.array([0.5, 0.9, 0.1, 0.5, 0.5])
    correct = np.array([False, True, True, True, False])
    fewest, most = ranking_intervals.correct_count_range(
        ranking_resampled.ranked(uncertainty, correct)
    )
    np.testing.assert_array_equal(fewest, [0, 1, 1, 1, 2, 3])
    np.testing.assert_array_equal(most, [0, 1, 2, 2, 2, 3])


def test_fpr95_interval_on_separated_samples() -> None:
    negatives, positives = np.arange(1000.0), np.arange(1000.0) + 2000
    low, high = ranking_intervals.fpr_at_tpr_interval(negatives, positives, 0.95, 0.95)
    assert low == 0.0 and high == pytest.approx(1 - 0.0125 ** (1 / 1000))


def test_average_precision_floor_is_below_the_population_value() -> None:
    for share in (0.5, 0.2):
        for fpr in (0.05, 0.2, 0.5):
            shift = shift_for_fpr95(fpr)
            floor = ranking_intervals.average_precision_floor(share, fpr, 0.95)
            assert 0.0 < floor < average_precision(shift, share)
    # With no false positives up to recall 0.95 the floor is 0.95 plus the last stretch.
    tail = 0.05 - 1.0 * math.log(2.0 / 1.95)
    assert ranking_intervals.average_precision_floor(0.5, 0.0, 0.95) == pytest.approx(0.95 + tail)


def test_population_values_of_the_validity_cases_match_large_samples() -> None:
    rng = np.random.default_rng(0)
    negatives = rng.normal(size=200_000)
    for value in (0.8, 0.9):
        positives = rng.normal(shift_for_auroc(value), size=200_000)
        assert auroc(negatives, positives) == pytest.approx(value, abs=3e-3)
        positives = rng.normal(shift_for_aupr(value, 0.5), size=200_000)
        assert aupr(negatives, positives) == pytest.approx(value, abs=3e-3)
        positives = rng.normal(shift_for_fpr95(1 - value), size=200_000)
        assert fpr_at_tpr(negatives, positives) == pytest.approx(1 - value, abs=5e-3)


def test_hoeffding_and_bca_intervals() -> None:
    assert intervals.hoeffding_interval(0.9, 20, 0.95) == pytest.approx(
        (0.9 - math.sqrt(math.log(40) / 40), 1.0)
    )
    rng = np.random.default_rng(0)
    values = rng.normal(size=4000)
    means = values[rng.integers(0, 4000, (4000, 4000))].mean(axis=1)
    leave_one_out = (values.sum() - values) / 3999
    low, high = intervals.bca_interval(values.mean(), means, [leave_one_out], 0.95)
    half = 1.96 * values.std() / math.sqrt(4000)
    assert low == pytest.approx(values.mean() - half, abs=4e-3)
    assert high == pytest.approx(values.mean() + half, abs=4e-3)
    assert intervals.bca_interval(0.5, np.full(100, 0.5), [np.full(5, 0.5)], 0.95) is None


@pytest.mark.parametrize("seed", range(10))
def test_closed_form_selective_jackknife_equals_leaving_each_input_out(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 40))
    uncertainty = rng.integers(0, 4, count).astype(float) if seed % 2 else rng.random(count)
    correct = rng.random(count) < 0.6
    jackknife = ranking_resampled.selective_jackknife(
        ranking_resampled.ranked(uncertainty, correct)
    )
    order = np.lexsort((~correct, uncertainty))  # the sorted slots: errors last within ties
    uncertainty, correct = uncertainty[order], correct[order]
    for name, metric in (("aurc", aurc), ("e_aurc", e_aurc)):
        left_out = [metric(np.delete(uncertainty, i), np.delete(correct, i)) for i in range(count)]
        np.testing.assert_allclose(jackknife[name], left_out, atol=1e-12)
