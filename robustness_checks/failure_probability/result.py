"""The result of a noise estimate, and the interval helpers shared by the estimators."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class NoiseEstimate:
    """P(argmax model(x + delta) != label), delta ~ N(0, sigma^2 I), with its uncertainty.

    `probability` is 0.0 only when no failure was observed; `log10_probability` is then -inf
    and otherwise finite, however small p is. `relative_error` is the estimated relative
    standard error of `probability` (inf without a failure). `ci` is a two-sided interval at
    `confidence`. `evaluations` counts every model forward pass over a single input, those
    spent building a proposal included. `ess` is Kong's effective sample size of the failing
    importance-sampling draws (None for the other estimators). `history` holds one point per
    sequential batch or run: evaluations, probability, ci_low, ci_high, relative_error.
    `nonfinite` counts the `draws` (forward evaluations, gradients not included) at which the
    model's logits were not all finite: those draws have no prediction and are never failures,
    so `probability` estimates P(misclassified with finite logits).
    """

    estimator: str
    probability: float
    log10_probability: float
    relative_error: float
    ci: tuple[float, float]
    confidence: float
    evaluations: int
    ess: float | None
    converged: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    nonfinite: int = 0
    draws: int = 0
    unreliable: list[str] = field(default_factory=list)

    @property
    def reliable(self) -> bool:
        """False when the estimator's diagnostics say its relative error cannot be trusted."""
        return not self.unreliable


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile for `confidence`."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def lognormal_interval(
    log_p: float, relative_error: float, confidence: float
) -> tuple[float, float]:
    """Interval p * exp(+-z * s), s^2 = log(1 + RE^2): a log-normal model of the estimate.

    Positive, and wider above than below, as the skewed distributions of splitting and
    importance-sampling estimates are. The upper limit is capped at 1.
    """
    if not math.isfinite(relative_error):
        return 0.0, 1.0
    spread = z_value(confidence) * math.sqrt(math.log1p(relative_error**2))
    return math.exp(log_p - spread), min(1.0, math.exp(log_p + spread))


def history_point(
    evaluations: int, log_p: float, relative_error: float, ci: tuple[float, float]
) -> dict[str, Any]:
    """One point of a convergence trace."""
    return {
        "evaluations": int(evaluations),
        "probability": math.exp(log_p) if math.isfinite(log_p) else 0.0,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "relative_error": relative_error,
    }


def no_failure(
    estimator: str,
    *,
    upper: float,
    confidence: float,
    evaluations: int,
    history: list[dict[str, Any]],
    details: dict[str, Any],
) -> NoiseEstimate:
    """The result when no failure was observed: p = 0 and an upper bound only."""
    return NoiseEstimate(
        estimator=estimator,
        probability=0.0,
        log10_probability=-math.inf,
        relative_error=math.inf,
        ci=(0.0, upper),
        confidence=confidence,
        evaluations=evaluations,
        ess=0.0 if estimator == "importance" else None,
        converged=False,
        history=history,
        details=details,
    )


def from_log(
    estimator: str,
    log_p: float,
    relative_error: float,
    ci: tuple[float, float],
    *,
    target: float,
    reliable: bool = True,
    unreliable: list[str] | None = None,
    **fields: Any,
) -> NoiseEstimate:
    """A result from a natural-log probability; converged when RE reached `target`, the
    estimate is `reliable` (enough of it to judge) and no diagnostic called its error
    `unreliable` (the reasons, kept in the result)."""
    return NoiseEstimate(
        estimator=estimator,
        probability=math.exp(log_p),
        log10_probability=log_p / math.log(10),
        relative_error=relative_error,
        ci=ci,
        converged=reliable and not unreliable and relative_error <= target,
        unreliable=list(unreliable or ()),
        **fields,
    )
