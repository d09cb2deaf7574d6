"""What a timed-out check had finished (`details.timed_out`), drawn for its report section."""

from __future__ import annotations

import math
from typing import Any

from robustness_checks.details import PartialWork
from robustness_checks.formatting import format_number
from robustness_checks.reporting.svg import esc, num, svg_root, text_width

PARTIAL_COLOUR = "#8a5300"
BAR = 220.0  # px of a bar at 1.0
ROW = 20.0


def partial_work(record: dict[str, Any]) -> dict[str, Any] | None:
    """The report's view of a timed-out check's finished work, or None when it kept none."""
    found = (record.get("details") or {}).get("timed_out")
    if not found:
        return None
    try:
        work = PartialWork.model_validate(found)
    except ValueError:
        return None
    share = work.examples_done / work.examples if work.examples else 0.0
    return {
        "done": work.examples_done,
        "total": work.examples,
        "share_text": f"{100 * share:.0f}%",
        "svg": partial_svg(work),
    }


def partial_svg(work: PartialWork) -> str:
    """A progress bar of the examples done, then a bar per figure that is a share (0 to 1)."""
    labels = ["examples done", *work.figures]
    left = max(text_width(label) for label in labels) + 12
    share = work.examples_done / work.examples if work.examples else 0.0
    title = (
        f"Partial: {work.examples_done:,} of {work.examples:,} examples finished before the timeout"
    )
    parts = [
        f'<text x="0" y="13" font-size="11" font-weight="600" fill="{PARTIAL_COLOUR}">'
        f"{esc(title)}</text>",
        _row(1, "examples done", share, f"{work.examples_done:,} of {work.examples:,}", left),
    ]
    for number, (name, value) in enumerate(work.figures.items(), start=2):
        bounded = math.isfinite(value) and 0.0 <= value <= 1.0
        parts.append(_row(number, name, value if bounded else None, format_number(value), left))
    note = "figures on the finished examples only: not a verdict on the check's bound"
    height = ROW * (len(labels) + 1) + 22
    parts.append(
        f'<text x="0" y="{num(height - 6)}" font-size="9" fill="#5f6b76">{esc(note)}</text>'
    )
    width = max(left + BAR + 90, text_width(note, 9) + 4, text_width(title, 11) + 4)
    return svg_root(width, height, "".join(parts))


def _row(number: int, label: str, share: float | None, text: str, left: float) -> str:
    """One labelled bar on a 0-to-1 scale (a dashed grey track, a brown fill), and its text."""
    y = ROW * number + 4
    parts = [f'<text x="{num(left - 8)}" y="{num(y + 11)}" text-anchor="end">{esc(label)}</text>']
    if share is not None:
        parts.append(
            f'<rect x="{num(left)}" y="{num(y + 2)}" width="{num(BAR)}" height="12" '
            'fill="#f3f5f7" stroke="#c9ced4" stroke-dasharray="3,2"/>'
            f'<rect x="{num(left)}" y="{num(y + 2)}" width="{num(BAR * share)}" height="12" '
            f'fill="{PARTIAL_COLOUR}" fill-opacity="0.55"/>'
        )
    value_x = left + (BAR + 8 if share is not None else 0)
    parts.append(f'<text x="{num(value_x)}" y="{num(y + 11)}">{esc(text)}</text>')
    return "".join(parts)
