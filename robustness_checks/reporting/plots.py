"""Matplotlib figures for each check type, rendered to inline SVG from a result record."""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib.figure import Figure

Record = dict[str, Any]
PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
ACCENT = "#1565c0"


def plot_for(record: Record) -> str | None:
    """The SVG plot of a result record, or None when its type has none (or it errored)."""
    if record.get("outcome") == "error":
        return None
    from robustness_checks.checks.registry import CHECK_TYPES

    entry = CHECK_TYPES.get(record.get("type", ""))
    plotter = None if entry is None else entry.plotter()
    if plotter is None:
        return None
    figure = plotter(record)
    return None if figure is None else to_svg(figure)


def to_svg(figure: Figure) -> str:
    """The figure as an inline <svg> element (no XML prologue)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float = 5.0, height: float = 3.4) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    figure.set_layout_engine("constrained")
    return figure


def reliability_diagram(record: Record) -> Figure | None:
    """Accuracy against confidence per bin, with bin counts."""
    rows = record.get("details", {}).get("bins") or []
    if not rows:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    centres = [(r["lo"] + r["hi"]) / 2 for r in rows]
    widths = [max(r["hi"] - r["lo"], 0.01) for r in rows]
    axes.bar(
        centres,
        [r["accuracy"] for r in rows],
        width=widths,
        color=ACCENT,
        alpha=0.75,
        edgecolor="white",
        label="accuracy",
    )
    axes.bar(
        centres,
        [r["confidence"] - r["accuracy"] for r in rows],
        width=widths,
        bottom=[r["accuracy"] for r in rows],
        color=FAIL_COLOUR,
        alpha=0.35,
        label="gap to confidence",
    )
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence",
        ylabel="accuracy",
        title=f"Reliability diagram ({record.get('metric')})",
    )
    axes.legend(loc="upper left", fontsize=8)
    return figure


def accuracy_against_eps(record: Record) -> Figure | None:
    """Clean and adversarial accuracy (with intervals) against eps."""
    details = record.get("details", {})
    rows = details.get("per_eps") or []
    if not rows:
        return None
    eps = [r["eps"] for r in rows]
    accuracy = [r["adversarial_accuracy"] for r in rows]
    low = [a - r["adversarial_accuracy_ci"][0] for a, r in zip(accuracy, rows, strict=True)]
    high = [r["adversarial_accuracy_ci"][1] - a for a, r in zip(accuracy, rows, strict=True)]
    figure = _figure()
    axes = figure.add_subplot()
    axes.errorbar(
        eps,
        accuracy,
        yerr=[low, high],
        marker="o",
        color=FAIL_COLOUR,
        capsize=3,
        label=details.get("attack", {}).get("label", "attack"),
    )
    axes.axhline(
        details.get("clean_accuracy", math.nan),
        color=ACCENT,
        linestyle="--",
        label="clean accuracy",
    )
    axes.set(xlabel="eps", ylabel="accuracy", ylim=(0, 1.02), title="Accuracy under attack")
    axes.legend(fontsize=8)
    return figure


def noise_convergence(record: Record) -> Figure | None:
    """Each input's estimate and interval against evaluations spent (log scale)."""
    inputs = record.get("details", {}).get("inputs") or []
    traced = [i for i in inputs if i.get("history")]
    if not traced:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    for entry in traced[:8]:
        history = [h for h in entry["history"] if h.get("probability", 0) > 0]
        if not history:
            continue
        spent = [h["evaluations"] for h in history]
        line = axes.plot(
            spent,
            [h["probability"] for h in history],
            marker=".",
            label=f"input {entry.get('index')}",
        )[0]
        axes.fill_between(
            spent,
            [max(h.get("ci_low", 0), 1e-300) for h in history],
            [h.get("ci_high", h["probability"]) for h in history],
            color=line.get_color(),
            alpha=0.15,
        )
    if record.get("threshold"):
        axes.axhline(record["threshold"], color="grey", linestyle="--", label="bound")
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="evaluations",
        ylabel="P(misclassified)",
        title="Noise estimate convergence",
    )
    axes.legend(fontsize=7)
    return figure


def measure_against_eps(record: Record) -> Figure | None:
    """Mean uncertainty (with interval) and accuracy against eps."""
    details = record.get("details", {})
    eps = details.get("eps")
    mean = details.get("mean")
    if not eps or not mean:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    intervals = details.get("mean_ci") or [[m, m] for m in mean]
    axes.errorbar(
        eps,
        mean,
        yerr=[
            [m - c[0] for m, c in zip(mean, intervals, strict=True)],
            [c[1] - m for m, c in zip(mean, intervals, strict=True)],
        ],
        marker="o",
        color=ACCENT,
        capsize=3,
        label=details.get("measure"),
    )
    axes.set(xlabel="eps", ylabel=str(details.get("measure")), title="Uncertainty against eps")
    if details.get("accuracy"):
        twin = axes.twinx()
        twin.plot(eps, details["accuracy"], marker="s", color=FAIL_COLOUR, label="accuracy")
        twin.set(ylabel="accuracy", ylim=(0, 1.02))
    axes.legend(fontsize=8, loc="upper left")
    return figure


def risk_coverage(record: Record) -> Figure | None:
    """Selective risk against coverage."""
    curve = record.get("details", {}).get("risk_coverage")
    if not curve:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(curve["coverage"], curve["risk"], color=ACCENT)
    axes.set(xlabel="coverage", ylabel="selective risk", xlim=(0, 1), title="Risk-coverage curve")
    return figure


def roc(record: Record) -> Figure | None:
    """ROC curve of the score (positives: OOD inputs, or errors)."""
    curve = record.get("details", {}).get("roc")
    if not curve:
        return None
    figure = _figure(4.2, 3.6)
    axes = figure.add_subplot()
    axes.plot(curve["fpr"], curve["tpr"], color=ACCENT)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="ROC",
    )
    return figure


def example_images(record: Record) -> str | None:
    """Input, perturbation and perturbed input of each failing example, as one SVG grid."""
    details = record.get("details", {})
    rows = [
        r for r in details.get("failing_examples") or details.get("failures") or [] if _is_image(r)
    ]
    if not rows:
        return None
    rows = rows[:6]
    figure = Figure(figsize=(4.2, 1.45 * len(rows)), dpi=100)
    figure.set_layout_engine("constrained")
    axes = figure.subplots(len(rows), 3, squeeze=False)
    for row, (a, b, c) in zip(rows, axes, strict=True):
        image = _image(row["input"], row["shape"])
        delta = _image(row["perturbation"], row["shape"])
        perturbed = [
            [min(max(p + d, 0.0), 1.0) for p, d in zip(pr, dr, strict=True)]
            for pr, dr in zip(image, delta, strict=True)
        ]
        limit = max(max(abs(v) for v in line) for line in delta) or 1.0
        a.imshow(image, cmap="gray", vmin=0, vmax=1)
        b.imshow(delta, cmap="coolwarm", vmin=-limit, vmax=limit)
        c.imshow(perturbed, cmap="gray", vmin=0, vmax=1)
        a.set_title(
            f"#{row['index']}: {row.get('label')} ({row.get('clean_confidence', math.nan):.2f})",
            fontsize=7,
        )
        b.set_title("perturbation", fontsize=7)
        predicted = row.get("adversarial_prediction", row.get("perturbed_prediction"))
        confidence = row.get("adversarial_confidence", row.get("perturbed_confidence", math.nan))
        c.set_title(f"-> {predicted} ({confidence:.2f})", fontsize=7, color=FAIL_COLOUR)
        for axis in (a, b, c):
            axis.set_xticks([])
            axis.set_yticks([])
    return to_svg(figure)


def _is_image(row: Record) -> bool:
    shape = row.get("shape") or []
    return len(shape) == 3 and shape[0] in (1, 3) and "input" in row and "perturbation" in row


def _image(values: list[float], shape: list[int]) -> list[list[float]]:
    """Grey image rows from flat values (channel mean for colour images)."""
    channels, height, width = shape
    plane = height * width
    return [
        [
            sum(values[c * plane + y * width + x] for c in range(channels)) / channels
            for x in range(width)
        ]
        for y in range(height)
    ]
