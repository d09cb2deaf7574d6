"""Histograms of uncertainty scores by group, and confusion matrices, as inline SVG."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from robustness_checks.reporting.chart import Chart
from robustness_checks.reporting.images import colour_map
from robustness_checks.reporting.svg import esc, num, side_by_side, svg_root, text_width

Result = Any  # robustness_checks.results.CheckResult
GROUP_COLOURS = ("#1565c0", "#c62828", "#2e7d32", "#ef6c00")
BLUES = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
MAX_PANELS = 4


def score_histograms(result: Result) -> str | None:
    """Each group's share of examples per score bin (bars side by side), one panel per setting."""
    data = result.details.score_histogram
    if data is None or not data.panels:
        return None
    edges = data.edges
    panels = data.panels
    if len(panels) > MAX_PANELS:  # first, last and evenly spaced ones between
        keep = np.unique(np.linspace(0, len(panels) - 1, MAX_PANELS).round().astype(int))
        panels = [panels[i] for i in keep]
    single = len(panels) == 1
    charts = []
    for number, panel in enumerate(panels):
        groups = panel.counts
        title = panel.label or " against ".join(groups)
        chart = Chart(
            title=title,
            xlabel=data.score,
            ylabel="share of group" if number == 0 else "",
            xlim=(edges[0], edges[-1]),
            width=320 if single else 200,
            height=150 if single else 120,
        )
        share = 1.0 / max(len(groups), 1)
        top = 0.0
        for g, (name, counts) in enumerate(groups.items()):
            total = sum(counts) or 1
            heights = [c / total for c in counts]
            top = max(top, *heights)
            lefts = [a + (b - a) * share * g for a, b in itertools.pairwise(edges)]
            widths = [(b - a) * share for a, b in itertools.pairwise(edges)]
            tips = [
                f"{name}: {c} of {sum(counts)} in [{a:.3g}, {b:.3g}]"
                for c, a, b in zip(counts, edges, edges[1:], strict=False)
            ]
            chart.bars(
                lefts,
                [a + w for a, w in zip(lefts, widths, strict=True)],
                [0.0] * len(counts),
                heights,
                GROUP_COLOURS[g % len(GROUP_COLOURS)],
                f"{name} (n={sum(counts)})",
                0.85,
                tips,
            )
        chart.ylim = (0.0, (top or 1.0) * 1.08)
        charts.append(chart.piece())
    if single:
        width, height, body = charts[0]
        return svg_root(width, height, body)
    return side_by_side(charts, columns=2)


def confusion_matrix(result: Result) -> str | None:
    """Counts of true label (rows) against prediction (columns), shaded by the row's share."""
    data = result.details.confusion_matrix
    if data is None:
        return None
    if not data.counts:
        return _most_confused(data) if data.most_confused else None
    counts = np.asarray(data.counts, dtype=np.float64)
    classes = counts.shape[0]
    cell = max(10.0, min(26.0, 280.0 / classes))
    left, top = 46.0, 36.0
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    colours = colour_map(share, BLUES)
    parts = [
        f'<text x="{num(left + cell * classes / 2)}" y="12" text-anchor="middle" '
        'font-size="12">Confusion matrix</text>',
        f'<text x="{num(left + cell * classes / 2)}" y="28" text-anchor="middle">predicted</text>',
        f'<text transform="translate(12,{num(top + cell * classes / 2)}) rotate(-90)" '
        'text-anchor="middle">true label</text>',
    ]
    labelled = classes <= 20
    for i in range(classes):
        if labelled:
            parts.append(
                f'<text x="{num(left - 4)}" y="{num(top + cell * i + cell / 2 + 3.5)}" '
                f'text-anchor="end">{i}</text>'
                f'<text x="{num(left + cell * i + cell / 2)}" y="{num(top + cell * classes + 12)}"'
                f' text-anchor="middle">{i}</text>'
            )
        for j in range(classes):
            r, g, b = (int(v) for v in colours[i, j])
            count = int(counts[i, j])
            parts.append(
                f'<rect x="{num(left + cell * j)}" y="{num(top + cell * i)}" width="{num(cell)}" '
                f'height="{num(cell)}" fill="rgb({r},{g},{b})" stroke="#fff" stroke-width="0.5">'
                f"<title>true {i}, predicted {j}: {count} ({share[i, j]:.1%} of label {i})"
                "</title></rect>"
            )
            if count and cell >= 16 and len(str(count)) * 6 < cell:
                ink = "#fff" if share[i, j] > 0.5 else "#1d2329"
                parts.append(
                    f'<text x="{num(left + cell * j + cell / 2)}" '
                    f'y="{num(top + cell * i + cell / 2 + 3.5)}" text-anchor="middle" '
                    f'font-size="9" fill="{ink}">{count}</text>'
                )
    note = "shade: share of the true label's examples; hover a cell for its count"
    bottom = top + cell * classes + (28 if labelled else 14)
    parts.append(f'<text x="4" y="{num(bottom)}" font-size="9">{esc(note)}</text>')
    width = max(left + cell * classes + 10, text_width(note, 9) + 8)
    return svg_root(width, bottom + 6, "".join(parts))


def _most_confused(data: Any) -> str:
    """A list of the most confused (label, prediction) pairs, for many classes."""
    lines = [f"Most confused pairs ({data.classes} classes)"]
    lines += [f"true {a} predicted as {b}: {c}" for a, b, c in data.most_confused]
    if data.total:
        lines.append(f"correct: {data.correct} of {data.total}")
    body = "".join(
        f'<text x="4" y="{num(14 + 14 * i)}" font-size="{12 if i == 0 else 10}">{esc(line)}</text>'
        for i, line in enumerate(lines)
    )
    width = max(text_width(line, 11) for line in lines) + 10
    return svg_root(width, 14 * len(lines) + 8, body)
