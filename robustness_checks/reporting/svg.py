"""Inline-SVG building blocks: escaping, numbers, text widths, <svg> roots, markers, grids."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
CHAR = 6.1  # approximate width of a character at 10 px, for layout
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
Number = float | int


def esc(text: object) -> str:
    """Text escaped for SVG content and attributes."""
    return html.escape(str(text), quote=True)


def num(value: float) -> str:
    """A coordinate with at most two decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


def text_width(text: str, size: float = 10.0) -> float:
    """Estimated rendered width of `text` in px."""
    return len(text) * CHAR * size / 10.0


def svg_root(width: float, height: float, body: str, x: float | None = None, y: float = 0) -> str:
    """An <svg> element of this size around `body` (placed at x, y when nested)."""
    place = "" if x is None else f' x="{num(x)}" y="{num(y)}"'
    return (
        f'<svg{place} width="{num(width)}" height="{num(height)}" '
        f'viewBox="0 0 {num(width)} {num(height)}" font-family="{FONT}" font-size="10">'
        f"{body}</svg>"
    )


def marker(kind: str | None, x: float, y: float, colour: str) -> str:
    """A point marker: 'o' circle, 's' square, '.' dot."""
    if kind == "s":
        corner = f'x="{num(x - 3.2)}" y="{num(y - 3.2)}"'
        return f'<rect {corner} width="6.4" height="6.4" fill="{colour}"/>'
    radius = 1.8 if kind == "." else 3.3
    return f'<circle cx="{num(x)}" cy="{num(y)}" r="{radius}" fill="{colour}"/>'


def side_by_side(charts: Sequence[tuple[float, float, str]], columns: int, gap: float = 6) -> str:
    """(width, height, body) charts laid out in a grid, as one <svg>."""
    widths = [w for w, _, _ in charts]
    cell_w = max(widths, default=0)
    cell_h = max((h for _, h, _ in charts), default=0)
    parts = []
    for i, (w, h, body) in enumerate(charts):
        col, row = i % columns, i // columns
        parts.append(svg_root(w, h, body, col * (cell_w + gap), row * (cell_h + gap)))
    rows = math.ceil(len(charts) / columns)
    used = min(columns, len(charts))
    return svg_root(
        used * cell_w + (used - 1) * gap, rows * cell_h + (rows - 1) * gap, "".join(parts)
    )
