"""The report's figures for a result: the type's chart, score pictures, failing examples.

Built-in charts are hand-built inline SVG (a few ms each; matplotlib took about 0.13 s a
plot). A check type's `plot` may also return a matplotlib Figure, rendered with `to_svg`.
"""

from __future__ import annotations

import io
from typing import Any

from robustness_checks.reporting.curves import (
    ACCENT,
    FAIL_COLOUR,
    PASS_COLOUR,
    accuracy_against_eps,
    measure_against_eps,
    noise_convergence,
    reliability_diagram,
    risk_coverage,
    roc,
)
from robustness_checks.reporting.distributions import confusion_matrix, score_histograms
from robustness_checks.reporting.images import example_images

Result = Any  # robustness_checks.results.CheckResult, details typed by its check type

__all__ = [
    "ACCENT",
    "FAIL_COLOUR",
    "PASS_COLOUR",
    "accuracy_against_eps",
    "confusion_matrix",
    "example_images",
    "extra_figures",
    "measure_against_eps",
    "noise_convergence",
    "plot_for",
    "reliability_diagram",
    "risk_coverage",
    "roc",
    "score_histograms",
    "to_svg",
]


def plot_for(result: Result) -> str | None:
    """The SVG plot of a result, or None when its type has none (or it errored)."""
    if result.outcome == "error":
        return None
    from robustness_checks.checks.registry import CHECK_TYPES

    entry = CHECK_TYPES.get(result.type)
    plotter = None if entry is None else entry.plotter()
    if plotter is None:
        return None
    figure = plotter(result)
    if figure is None or isinstance(figure, str):
        return figure
    return to_svg(figure)


def extra_figures(result: Result, matrix: bool = True) -> list[tuple[str, str]]:
    """(svg, caption) of the score histograms and (unless `matrix` is False: the HTML report
    draws it once per model and data) the confusion matrix a result's details carry."""
    if result.outcome == "error":
        return []
    found = []
    histogram = score_histograms(result)
    if histogram:
        score = result.details.score_histogram.score
        found.append((histogram, f"{score} by group: each group's share of its examples per bin"))
    drawn = confusion_matrix(result) if matrix else None
    if drawn:
        found.append((drawn, "true label against prediction on every example"))
    return found


def to_svg(figure: Any) -> str:
    """A matplotlib figure as an inline <svg> element (no XML prologue)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]
