"""Validity case of the `entropy_trend` check: paired measures with a known trend per step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustness_checks.checks.common.decision import Judging
from robustness_checks.validity.cases import RULES, ValidityCase

EPS = [0.0, 0.05, 0.1]


def cases() -> list[ValidityCase]:
    """Expect an increasing measure; the population's mean step is the truth (in units of the
    measure's per-input noise): 0 at the bound (no trend), -0.2 violating (it falls)."""
    return [
        ValidityCase(
            check_type="entropy_trend",
            metric="trend_p_value",
            comparison="<=",
            bound=0.0,
            violating=-0.2,
            passes=_passes,
            population=(
                "per input a base level N(0, 1) plus truth x step plus N(0, 1) noise at each of 3 "
                "eps; the truth is the mean step, 0 at the bound (no trend), -0.2 violating; "
                "decided by the check's own trend test (Page's L)"
            ),
        )
    ]


def _passes(truth: float, n: int, seeds: Sequence[int], confidence: float) -> dict[str, np.ndarray]:
    from robustness_checks.checks.entropy_trend import decide_trend
    from robustness_checks.spec.parse import validate_check

    params = validate_check({"name": "validity", "type": "entropy_trend", "eps": EPS})
    found: dict[str, list[bool]] = {rule: [] for rule in RULES}
    steps = np.arange(len(EPS), dtype=np.float64)
    for seed in seeds:
        rng = np.random.default_rng([seed, n, int(1e6 * (truth + 1))])
        values = rng.normal(size=(n, 1)) + truth * steps + rng.normal(size=(n, len(EPS)))
        correct = np.ones((n, len(EPS)), dtype=bool)
        for rule in RULES:
            result = decide_trend(Judging(confidence, rule), params, values, correct)  # type: ignore[arg-type]
            found[rule].append(result.passed)
    return {rule: np.array(values) for rule, values in found.items()}
