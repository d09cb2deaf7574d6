"""The main chart of each built-in check type, drawn from its typed result as inline SVG."""

from __future__ import annotations

import math
from typing import Any

from robustness_checks.reporting.chart import Chart
from robustness_checks.reporting.svg import PALETTE

Result = Any  # robustness_checks.results.CheckResult, details typed by its check type
PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
ACCENT = "#1565c0"
UNDER_COLOUR = "#7b1fa2"


def reliability_diagram(result: Result) -> str | None:
    """Accuracy against confidence per bin; the gap to confidence coloured by its direction."""
    rows = result.details.bins
    if not rows:
        return None
    chart = Chart(
        title=f"Reliability diagram ({result.metric})",
        xlabel="confidence",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        width=300,
        height=210,
    )
    lefts = [r.lo for r in rows]
    rights = [max(r.hi, r.lo + 0.01) for r in rows]
    accuracy = [r.accuracy for r in rows]
    confidence = [r.confidence for r in rows]
    tips = [
        f"({r.lo:.3g}, {r.hi:.3g}]: {r.count} examples, accuracy {r.accuracy:.3f}, "
        f"confidence {r.confidence:.3f}"
        for r in rows
    ]
    chart.bars(lefts, rights, [0] * len(rows), accuracy, ACCENT, "accuracy", 0.8, tips)
    over = [i for i, r in enumerate(rows) if r.confidence > r.accuracy]
    under = [i for i, r in enumerate(rows) if r.confidence < r.accuracy]
    for picked, colour, label, opacity, below in (
        (over, FAIL_COLOUR, "over-confident gap (confidence above accuracy)", 0.35, None),
        (
            under,
            UNDER_COLOUR,
            "under-confident gap (accuracy above confidence)",
            0.55,
            (ACCENT, 0.8),
        ),
    ):
        chart.bars(
            [lefts[i] for i in picked],
            [rights[i] for i in picked],
            [min(accuracy[i], confidence[i]) for i in picked],
            [max(accuracy[i], confidence[i]) for i in picked],
            colour,
            label if picked else None,
            opacity,
            [tips[i] for i in picked],
            below,
        )
    chart.line([0, 1], [0, 1], "grey", "perfect calibration", dash="4,3", width=1)
    return chart.svg()


def accuracy_against_eps(result: Result) -> str | None:
    """Clean and adversarial accuracy (with intervals) against eps; ticks at the eps used."""
    details = result.details
    rows = details.per_eps
    if not rows:
        return None
    eps = [r.eps for r in rows]
    accuracy = [r.adversarial_accuracy for r in rows]
    top = max(eps) or 1.0
    chart = Chart(
        title="Accuracy under attack",
        xlabel="eps",
        ylabel="accuracy",
        xlim=(0, top * 1.08),
        ylim=(0, 1.02),
        xticks=[0.0, *eps],
    )
    clean, interval = details.clean_accuracy, details.clean_accuracy_ci
    chart.band([0, top * 1.08], [interval[0]] * 2, [interval[1]] * 2, ACCENT, 0.1)
    if math.isfinite(clean):
        chart.hline(clean, ACCENT, "clean accuracy (band: its interval)")
    chart.errorbars(
        eps,
        [r.adversarial_accuracy_ci[0] for r in rows],
        [r.adversarial_accuracy_ci[1] for r in rows],
        FAIL_COLOUR,
    )
    chart.line(eps, accuracy, FAIL_COLOUR, f"{details.attack_label()} (with interval)", marker="o")
    return chart.svg()


def noise_convergence(result: Result) -> str | None:
    """Each input's estimate and interval against evaluations spent (log scales)."""
    traced = [row for row in result.details.inputs if row.history]
    if not traced:
        return None
    chart = Chart(
        title="Noise estimate convergence",
        xlabel="evaluations",
        ylabel="P(misclassified)",
        xlog=True,
        ylog=True,
    )
    for colour, entry in zip(PALETTE, traced[:8], strict=False):
        history = [h for h in entry.history if h.probability > 0]
        if not history:
            continue
        spent = [h.evaluations for h in history]
        low = [max(h.ci_low, h.probability * 1e-3, 1e-300) for h in history]
        chart.band(spent, low, [h.ci_high for h in history], colour)
        chart.line(
            spent, [h.probability for h in history], colour, f"input {entry.index}", marker="."
        )
    if result.threshold:
        chart.hline(result.threshold, "grey", "bound")
    return chart.svg()


def measure_against_eps(result: Result) -> str | None:
    """Mean uncertainty (with interval) and accuracy against eps, on two y axes."""
    details = result.details
    eps, mean = details.eps, details.mean
    if not eps or not mean:
        return None
    chart = Chart(
        title="Uncertainty against eps",
        xlabel="eps",
        ylabel=details.measure,
        xticks=list(eps),
        y2label="accuracy" if details.accuracy else None,
        y2lim=(0, 1.02),
    )
    intervals = details.mean_ci or [(m, m) for m in mean]
    chart.errorbars(eps, [c[0] for c in intervals], [c[1] for c in intervals], ACCENT)
    chart.line(eps, mean, ACCENT, f"mean {details.measure} (with interval)", marker="o")
    if details.accuracy:
        chart.line(
            eps, details.accuracy, FAIL_COLOUR, "accuracy (right axis)", marker="s", axis="right"
        )
    return chart.svg()


def risk_coverage(result: Result) -> str | None:
    """Selective risk against coverage."""
    details = result.details
    curve = details.risk_coverage
    if curve is None or not curve.coverage:
        return None
    top = max([*curve.risk, 0.0]) or 1.0
    chart = Chart(
        title="Risk-coverage curve",
        xlabel="coverage",
        ylabel="selective risk",
        xlim=(0, 1),
        ylim=(0, top * 1.05),
    )
    chart.line(curve.coverage, curve.risk, ACCENT, f"ranked by {details.score}")
    if details.coverage is not None:
        chart.line(
            [details.coverage] * 2, [0, top * 1.05], "grey", "coverage bound", "4,3", width=1
        )
    return chart.svg()


def roc(result: Result) -> str | None:
    """ROC curve of the score (positives: OOD inputs, or errors)."""
    details = result.details
    curve = details.roc
    if curve is None or not curve.fpr:
        return None
    auroc = details.auroc
    title = "ROC" if auroc is None else f"ROC (AUROC {auroc:.3f})"
    chart = Chart(
        title=title,
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1.01),
        width=230,
        height=210,
    )
    chart.line([0, 1], [0, 1], "grey", "chance", dash="4,3", width=1)
    chart.line(curve.fpr, curve.tpr, ACCENT, str(details.score))
    return chart.svg()
