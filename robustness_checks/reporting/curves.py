"""The main chart of each built-in check type, drawn from its typed result as inline SVG."""

from __future__ import annotations

import math
from typing import Any

from robustness_checks.reporting.chart import Chart, Entry
from robustness_checks.reporting.svg import PALETTE, svg_root, text_width

Result = Any  # robustness_checks.results.CheckResult, details typed by its check type
PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
ACCENT = "#1565c0"
UNDER_COLOUR = "#7b1fa2"
SPARSE_BIN = 10  # a reliability bin with fewer examples is drawn faded: its accuracy is noise


def reliability_diagram(result: Result) -> str | None:
    """Accuracy against confidence per bin, the gap to confidence coloured by its direction,
    and below it each bin's number of examples; bins with fewer than SPARSE_BIN examples are
    faded and outlined, since their accuracy is mostly noise."""
    rows = result.details.bins
    if not rows:
        return None
    chart = Chart(
        title=f"Reliability diagram ({result.metric})",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        width=320,
        height=210,
        xtick_labels=False,
    )
    lefts = [r.lo for r in rows]
    rights = [max(r.hi, r.lo + 0.01) for r in rows]
    tips = [
        f"({r.lo:.3g}, {r.hi:.3g}]: {r.count} examples, accuracy {r.accuracy:.3f}, "
        f"confidence {r.confidence:.3f}" + (" (few examples: mostly noise)" if _sparse(r) else "")
        for r in rows
    ]
    for sparse in (False, True):
        picked = [i for i, r in enumerate(rows) if _sparse(r) == sparse]
        _reliability_bars(chart, rows, picked, lefts, rights, tips, sparse)
    chart.line([0, 1], [0, 1], "grey", "perfect calibration", dash="4,3", width=1)
    strip = _count_strip(rows, lefts, rights, tips)
    strip.legend = chart.legend
    chart.legend = []
    if any(_sparse(r) for r in rows):
        strip.legend.append(
            Entry(
                f"bin of fewer than {SPARSE_BIN} examples (faded)", ACCENT, "box", "3,2", None, 0.25
            )
        )
    chart.min_left = strip.min_left = max(chart.left(), strip.left())
    top_width, top_height, top = chart.piece()
    width, height, bottom = strip.piece()
    return svg_root(
        max(top_width, width),
        top_height + height,
        svg_root(top_width, top_height, top, 0, 0) + svg_root(width, height, bottom, 0, top_height),
    )


def _sparse(row: Any) -> bool:
    return row.count < SPARSE_BIN


def _reliability_bars(
    chart: Chart,
    rows: list[Any],
    picked: list[int],
    lefts: list[float],
    rights: list[float],
    tips: list[str],
    sparse: bool,
) -> None:
    """Accuracy bars and gap bars of the picked bins (faded and outlined when sparse)."""
    if not picked:
        return
    fade = 0.3 if sparse else 1.0
    outline = "3,2" if sparse else None
    accuracy = [rows[i].accuracy for i in picked]
    chart.bars(
        [lefts[i] for i in picked],
        [rights[i] for i in picked],
        [0] * len(picked),
        accuracy,
        ACCENT,
        None if any(e.label == "accuracy" for e in chart.legend) else "accuracy",
        0.8 * fade,
        [tips[i] for i in picked],
        outline=outline,
    )
    over = [i for i in picked if rows[i].confidence > rows[i].accuracy]
    under = [i for i in picked if rows[i].confidence < rows[i].accuracy]
    for chosen, colour, label, opacity, below in (
        (over, FAIL_COLOUR, "over-confident gap (confidence above accuracy)", 0.35, None),
        (under, UNDER_COLOUR, "under-confident gap (accuracy above confidence)", 0.55, ACCENT),
    ):
        named = label if chosen and not any(e.label == label for e in chart.legend) else None
        chart.bars(
            [lefts[i] for i in chosen],
            [rights[i] for i in chosen],
            [min(rows[i].accuracy, rows[i].confidence) for i in chosen],
            [max(rows[i].accuracy, rows[i].confidence) for i in chosen],
            colour,
            named,
            opacity * fade,
            [tips[i] for i in chosen],
            (below, 0.8) if below else None,
            outline=outline,
        )


def _count_strip(
    rows: list[Any], lefts: list[float], rights: list[float], tips: list[str]
) -> Chart:
    """The examples in each bin as bars with their counts printed above (where they fit)."""
    counts = [r.count for r in rows]
    top = max(counts, default=1) or 1
    strip = Chart(
        xlabel="confidence",
        ylabel="examples",
        xlim=(0, 1),
        ylim=(0, top * 1.45),
        width=320,
        height=46,
    )
    for sparse in (False, True):
        picked = [i for i, r in enumerate(rows) if _sparse(r) == sparse]
        strip.bars(
            [lefts[i] for i in picked],
            [rights[i] for i in picked],
            [0] * len(picked),
            [counts[i] for i in picked],
            "#546e7a",
            None,
            0.3 if sparse else 0.85,
            [tips[i] for i in picked],
            outline="3,2" if sparse else None,
        )
    shown = [
        i
        for i in range(len(rows))
        if text_width(_count_text(counts[i]), 8) <= (rights[i] - lefts[i]) * strip.width + 4
    ]
    strip.text(
        [(lefts[i] + rights[i]) / 2 for i in shown],
        [counts[i] for i in shown],
        [_count_text(counts[i]) for i in shown],
    )
    return strip


def _count_text(count: int) -> str:
    """A bin's count in at most four characters: 7, 312, 4.1k, 12k."""
    if count < 1000:
        return str(count)
    if count < 10_000:
        return f"{count / 1000:.1f}k"
    return f"{count // 1000}k" if count < 1_000_000 else f"{count / 1e6:.1f}M"


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
    """Each input's estimate and interval against evaluations spent (log scales); an input with
    no misclassified draw yet shows its interval's upper end (dotted) instead."""
    traced = [row for row in result.details.inputs if row.history]
    if not traced:
        return None
    chart = Chart(
        title="Noise estimate convergence",
        xlabel="evaluations (model forward passes, log scale)",
        ylabel="P(misclassified), log scale",
        xlog=True,
        ylog=True,
        width=520,
        height=250,
    )
    for colour, entry in zip(PALETTE, traced[:8], strict=False):
        found = [h for h in entry.history if h.probability > 0]
        if found:
            spent = [h.evaluations for h in found]
            low = [max(h.ci_low, h.probability * 1e-3, 1e-300) for h in found]
            chart.band(spent, low, [h.ci_high for h in found], colour)
            label = f"input {entry.index}: p = {entry.probability:.3g}"
            chart.line(spent, [h.probability for h in found], colour, label, marker=".")
            continue
        bounded = [h for h in entry.history if h.ci_high > 0]
        if bounded:
            chart.line(
                [h.evaluations for h in bounded],
                [h.ci_high for h in bounded],
                colour,
                f"input {entry.index}: none misclassified, upper end of its interval",
                dash="2,2",
                marker=".",
            )
    if result.threshold:
        chart.hline(result.threshold, "grey", f"bound {result.threshold:.3g}")
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
