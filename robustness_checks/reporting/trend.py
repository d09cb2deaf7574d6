"""A per-check trend line over the saved baselines (and this run), as a small inline SVG."""

from __future__ import annotations

from typing import Any

from robustness_checks.reporting.svg import esc, num, svg_root
from robustness_checks.results import format_number

WIDTH, HEIGHT, PAD = 320.0, 90.0, 28.0


def trend_svg(points: list[dict[str, Any]], current: float | None) -> str | None:
    """The check's value in each saved baseline holding it (oldest first), then this run's;
    None unless the store holds the check in more than one run."""
    values = [(str(p.get("run")), p.get("value")) for p in points if p.get("value") is not None]
    if len(values) < 2:
        return None
    if current is not None:
        values.append(("this run", current))
    numbers = [v for _, v in values]
    low, high = min(numbers), max(numbers)
    span = (high - low) or (abs(high) or 1.0)
    step = (WIDTH - 2 * PAD) / (len(values) - 1)
    xy = [
        (PAD + i * step, HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD))
        for i, (_, v) in enumerate(values)
    ]
    line = " ".join(f"{num(x)},{num(y)}" for x, y in xy)
    dots = "".join(
        f'<circle cx="{num(x)}" cy="{num(y)}" r="3" fill="#1565c0">'
        f"<title>{esc(name)}: {esc(format_number(v))}</title></circle>"
        for (x, y), (name, v) in zip(xy, values, strict=True)
    )
    labels = (
        f'<text x="{num(PAD)}" y="{num(HEIGHT - 6)}" font-size="10">{esc(values[0][0])}</text>'
        f'<text x="{num(WIDTH - PAD)}" y="{num(HEIGHT - 6)}" font-size="10" text-anchor="end">'
        f"{esc(values[-1][0])}</text>"
        f'<text x="4" y="12" font-size="10">{esc(format_number(high))}</text>'
        f'<text x="4" y="{num(HEIGHT - PAD + 4)}" font-size="10">{esc(format_number(low))}</text>'
    )
    body = f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
    return svg_root(WIDTH, HEIGHT, body + dots + labels)
