"""Validity cases of the `adversarial` check: examples drawn as robust, broken or misclassified."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustness_checks.checks.common.decision import Judging
from robustness_checks.validity.cases import RULES, ValidityCase, violating_value

CLEAN_ACCURACY = 0.9  # population clean accuracy of the accuracy_drop case
EPS = 0.1


def cases() -> list[ValidityCase]:
    """min_accuracy 0.8 on adversarial accuracy, and max_drop 0.1 on the accuracy drop."""
    return [
        ValidityCase(
            check_type="adversarial",
            metric="adversarial_accuracy",
            comparison=">=",
            bound=0.8,
            violating=violating_value(">=", 0.8),
            passes=lambda truth, n, seeds, confidence: _passes(
                "min_accuracy",
                0.8,
                truth,
                CLEAN_ACCURACY if truth <= CLEAN_ACCURACY else 1.0,
                n,
                seeds,
                confidence,
            ),
            population=(
                "each example robust with probability = truth (clean accuracy 0.9, or 1 above "
                "it); counts decided by the check's own decision code"
            ),
        ),
        ValidityCase(
            check_type="adversarial",
            metric="accuracy_drop",
            comparison="<=",
            bound=0.1,
            violating=violating_value("<=", 0.1),
            passes=lambda truth, n, seeds, confidence: _passes(
                "max_drop", 0.1, CLEAN_ACCURACY - truth, CLEAN_ACCURACY, n, seeds, confidence
            ),
            population=(
                "clean accuracy 0.9, each example broken by the attack (correct clean, wrong "
                "attacked) with probability = truth"
            ),
        ),
    ]


def _passes(
    field: str,
    bound: float,
    robust: float,
    clean: float,
    n: int,
    seeds: Sequence[int],
    confidence: float,
) -> dict[str, np.ndarray]:
    """Per rule, whether the check passes on counts drawn per seed: each example robust with
    probability `robust`, correct only on clean inputs with `clean - robust`, else wrong."""
    from robustness_checks.checks.adversarial_counts import Tally, decide_counts
    from robustness_checks.spec.parse import validate_check

    params = validate_check(
        {"name": "validity", "type": "adversarial", "attack": {"eps": EPS}, field: bound}
    )
    found: dict[str, list[bool]] = {rule: [] for rule in RULES}
    for seed in seeds:
        rng = np.random.default_rng([seed, n, int(robust * 1e6)])
        counts = rng.multinomial(n, [robust, clean - robust, 1.0 - clean])
        tally = Tally(
            examples=n, clean_correct=int(counts[0] + counts[1]), robust_correct=[int(counts[0])]
        )
        for rule in RULES:
            result = decide_counts(Judging(confidence, rule), params, [EPS], tally, [])  # type: ignore[arg-type]
            found[rule].append(result.passed)
    return {rule: np.array(values) for rule, values in found.items()}
