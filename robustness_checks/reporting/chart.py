"""`Chart`: an x axis, one or two y axes, lines, bars, bands and a legend, as inline SVG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from robustness_checks.reporting.axes import Scale, axis_ticks, data_range
from robustness_checks.reporting.svg import esc, marker, num, svg_root, text_width

Number = float | int


@dataclass
class Entry:
    """One legend entry: a line (with dash and marker) or a filled swatch."""

    label: str
    colour: str
    kind: str = "line"
    dash: str | None = None
    marker: str | None = None
    opacity: float = 1.0
    under: tuple[str, float] | None = None  # (colour, opacity) drawn below a box swatch


@dataclass
class Chart:
    """A chart with one x axis and one or two y axes, drawn after all marks are added."""

    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    width: float = 360.0  # of the plot area, px
    height: float = 200.0
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    xlog: bool = False
    ylog: bool = False
    xticks: list[float] | None = None  # used when their labels fit, else round ticks
    xtick_labels: bool = True  # False: tick marks only (a chart stacked above another)
    min_left: float = 0.0  # px left of the plot area at least (to line up stacked charts)
    y2label: str | None = None
    y2lim: tuple[float, float] | None = None
    marks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    legend: list[Entry] = field(default_factory=list)

    def line(
        self,
        xs: Sequence[Number],
        ys: Sequence[Number],
        colour: str,
        label: str | None = None,
        dash: str | None = None,
        marker: str | None = None,
        width: float = 1.6,
        axis: str = "left",
    ) -> None:
        """A polyline through the points, with optional markers."""
        self._add("line", locals(), label and Entry(label, colour, dash=dash, marker=marker))

    def errorbars(
        self,
        xs: Sequence[Number],
        lows: Sequence[Number],
        highs: Sequence[Number],
        colour: str,
        axis: str = "left",
    ) -> None:
        """Vertical interval bars with caps."""
        self._add("errorbars", locals())

    def bars(
        self,
        lefts: Sequence[Number],
        rights: Sequence[Number],
        bottoms: Sequence[Number],
        tops: Sequence[Number],
        colour: str,
        label: str | None = None,
        opacity: float = 1.0,
        tips: Sequence[str] | None = None,
        over: tuple[str, float] | None = None,
        outline: str | None = None,
    ) -> None:
        """Rectangles in data coordinates (a hover tooltip each when `tips` are given); `over`:
        the (colour, opacity) of the bars these are drawn over, so the legend swatch matches;
        `outline`: a dash pattern for an outline in the bars' colour (else a thin white one)."""
        entry = label and Entry(label, colour, "box", dash=outline, opacity=opacity, under=over)
        self._add("bars", locals(), entry)

    def text(
        self,
        xs: Sequence[Number],
        ys: Sequence[Number],
        texts: Sequence[str],
        colour: str = "#1d2329",
        size: float = 8.0,
    ) -> None:
        """Labels centred at data coordinates (their baseline 2 px above the point)."""
        self._add("text", locals())

    def band(
        self,
        xs: Sequence[Number],
        lows: Sequence[Number],
        highs: Sequence[Number],
        colour: str,
        opacity: float = 0.15,
    ) -> None:
        """A filled band between two curves."""
        self._add("band", locals())

    def hline(self, y: float, colour: str, label: str | None = None, dash: str = "5,3") -> None:
        """A horizontal line across the plot area."""
        self._add("hline", locals(), label and Entry(label, colour, dash=dash))

    def _add(self, kind: str, values: dict[str, Any], entry: Entry | str | None = None) -> None:
        values.pop("self")
        self.marks.append((kind, values))
        if isinstance(entry, Entry):
            self.legend.append(entry)

    def _values(self, axis: str, key: str) -> list[float]:
        found: list[float] = []
        keys = {"x": ("xs", "lefts", "rights"), "y": ("ys", "lows", "highs", "bottoms", "tops")}
        for kind, mark in self.marks:
            if key == "y" and mark.get("axis", "left") != axis:
                continue
            if kind == "hline" and key == "y":
                found.append(mark["y"])
            for name in keys[key]:
                found += [float(v) for v in mark.get(name) or []]
        return found

    def svg(self, x: float | None = None, y: float = 0) -> str:
        """The chart as an <svg> element."""
        return svg_root(*self.size(), self._body(), x, y)

    def piece(self) -> tuple[float, float, str]:
        """(width, height, body) for `side_by_side`."""
        width, height = self.size()
        return width, height, self._body()

    def size(self) -> tuple[float, float]:
        """(width, height) of the whole chart in px."""
        self._layout()
        return self._size

    def _layout(self) -> None:
        xlo, xhi = self.xlim or data_range(self._values("left", "x"), self.xlog, 0.03)
        ylo, yhi = self.ylim or data_range(self._values("left", "y"), self.ylog)
        self._yticks = axis_ticks(ylo, yhi, self.ylog, self.height, vertical=True)
        y_labels = [label for _, label in self._yticks]
        left = max(self.min_left, 22 + max((text_width(t) for t in y_labels), default=10))
        right = 12.0
        self._y2ticks: list[tuple[float, str]] = []
        if self.y2label is not None:
            y2lo, y2hi = self.y2lim or data_range(self._values("right", "y"), False)
            self._y2 = Scale(y2lo, y2hi, self.height, 0)
            self._y2ticks = axis_ticks(y2lo, y2hi, False, self.height, vertical=True)
            right = 22 + max((text_width(t) for _, t in self._y2ticks), default=10)
        self._x = Scale(xlo, xhi, 0, self.width, self.xlog)
        self._y = Scale(ylo, yhi, self.height, 0, self.ylog)
        self._xticks = axis_ticks(xlo, xhi, self.xlog, self.width, given=self.xticks)
        self._origin = (left, 24.0 if self.title else 8.0)
        rows = _legend_rows(self.legend, left + self.width + right - 8)
        self._legend_rows = rows
        bottom = (20 if self.xtick_labels else 6) + (16 if self.xlabel else 0) + 15 * len(rows) + 4
        self._size = (left + self.width + right, self._origin[1] + self.height + bottom)

    def _body(self) -> str:
        ox, oy = self._origin
        w, h = self.width, self.height
        parts = [
            f'<rect x="{num(ox)}" y="{num(oy)}" width="{num(w)}" height="{num(h)}" '
            'fill="#fff" stroke="#333" stroke-width="0.8"/>'
        ]
        if self.title:
            parts.append(
                f'<text x="{num(ox + w / 2)}" y="15" text-anchor="middle" font-size="12">'
                f"{esc(self.title)}</text>"
            )
        parts += self._axes_text(ox, oy, w, h)
        inner = "".join(self._mark(kind, mark) for kind, mark in self.marks)
        # A nested <svg> clips the marks to the plot area (plus a margin for markers).
        parts.append(
            f'<svg x="{num(ox - 4)}" y="{num(oy - 4)}" width="{num(w + 8)}" '
            f'height="{num(h + 8)}" overflow="hidden"><g transform="translate(4,4)">{inner}</g>'
            "</svg>"
        )
        ticks = 20 if self.xtick_labels else 6
        parts.append(self._legend_svg(oy + h + ticks + (16 if self.xlabel else 0)))
        return "".join(parts)

    def left(self) -> float:
        """px left of the plot area (tick labels and y label)."""
        self._layout()
        return self._origin[0]

    def _axes_text(self, ox: float, oy: float, w: float, h: float) -> list[str]:
        parts = []
        for value, label in self._xticks:
            px = ox + self._x(value)
            tick = (
                f'<line x1="{num(px)}" y1="{num(oy + h)}" x2="{num(px)}" y2="{num(oy + h + 4)}" '
                'stroke="#333"/>'
            )
            if self.xtick_labels:
                tick += (
                    f'<text x="{num(px)}" y="{num(oy + h + 15)}" '
                    f'text-anchor="middle">{esc(label)}</text>'
                )
            parts.append(tick)
        for ticks, scale, side in ((self._yticks, self._y, -1), (self._y2ticks, None, 1)):
            scale = scale or getattr(self, "_y2", None)
            edge = ox if side < 0 else ox + w
            for value, label in ticks:
                py = oy + scale(value)
                anchor = "end" if side < 0 else "start"
                parts.append(
                    f'<line x1="{num(edge)}" y1="{num(py)}" x2="{num(edge + 4 * side)}" '
                    f'y2="{num(py)}" stroke="#333"/><text x="{num(edge + 7 * side)}" '
                    f'y="{num(py + 3.5)}" text-anchor="{anchor}">{esc(label)}</text>'
                )
        if self.xlabel:
            parts.append(
                f'<text x="{num(ox + w / 2)}" y="{num(oy + h + (31 if self.xtick_labels else 17))}"'
                ' text-anchor="middle" '
                f'font-size="11">{esc(self.xlabel)}</text>'
            )
        widest = max((text_width(t) for _, t in self._yticks), default=10)
        for label, px in ((self.ylabel, ox - widest - 13), (self.y2label, None)):
            if not label:
                continue
            if px is None:
                widest2 = max((text_width(t) for _, t in self._y2ticks), default=10)
                px = ox + w + widest2 + 17
            size = min(11.0, 10.0 * (h + 20) / max(text_width(label), 1.0))
            parts.append(
                f'<text transform="translate({num(px)},{num(oy + h / 2)}) rotate(-90)" '
                f'text-anchor="middle" font-size="{size:.3g}">{esc(label)}</text>'
            )
        return parts

    def _mark(self, kind: str, mark: dict[str, Any]) -> str:
        sx = self._x
        sy = self._y2 if mark.get("axis") == "right" else self._y
        if kind == "line":
            return _polyline(
                [(sx(x), sy(y)) for x, y in zip(mark["xs"], mark["ys"], strict=True)], mark
            )
        if kind == "errorbars":
            out = []
            for x, lo, hi in zip(mark["xs"], mark["lows"], mark["highs"], strict=True):
                px, top, bottom = sx(x), sy(hi), sy(lo)
                out.append(
                    f'<path d="M{num(px)},{num(top)}V{num(bottom)}M{num(px - 3)},{num(top)}'
                    f'h6M{num(px - 3)},{num(bottom)}h6" stroke="{mark["colour"]}" fill="none"/>'
                )
            return "".join(out)
        if kind == "bars":
            out = []
            tips = mark.get("tips") or [None] * len(mark["lefts"])
            stroke = 'stroke="#fff" stroke-width="0.6"'
            if mark.get("outline"):
                stroke = (
                    f'stroke="{mark["colour"]}" stroke-width="1" '
                    f'stroke-dasharray="{mark["outline"]}"'
                )
            rows = zip(
                mark["lefts"], mark["rights"], mark["bottoms"], mark["tops"], tips, strict=True
            )
            for a, b, bottom, top, tip in rows:
                x0, x1 = sorted((sx(a), sx(b)))
                y0, y1 = sorted((sy(top), sy(bottom)))
                title = f"<title>{esc(tip)}</title>" if tip else ""
                out.append(
                    f'<rect x="{num(x0)}" y="{num(y0)}" width="{num(x1 - x0)}" '
                    f'height="{num(y1 - y0)}" fill="{mark["colour"]}" '
                    f'fill-opacity="{mark["opacity"]:g}" {stroke}>{title}</rect>'
                )
            return "".join(out)
        if kind == "text":
            size = mark["size"]
            return "".join(
                f'<text x="{num(sx(x))}" y="{num(sy(y) - 2)}" text-anchor="middle" '
                f'font-size="{size:g}" fill="{mark["colour"]}">{esc(label)}</text>'
                for x, y, label in zip(mark["xs"], mark["ys"], mark["texts"], strict=True)
            )
        if kind == "band":
            upper = [(sx(x), sy(v)) for x, v in zip(mark["xs"], mark["highs"], strict=True)]
            lower = [(sx(x), sy(v)) for x, v in zip(mark["xs"], mark["lows"], strict=True)]
            points = " ".join(f"{num(a)},{num(b)}" for a, b in upper + lower[::-1])
            return (
                f'<polygon points="{points}" fill="{mark["colour"]}" '
                f'fill-opacity="{mark["opacity"]:g}" stroke="none"/>'
            )
        py = sy(mark["y"])
        return (
            f'<line x1="0" y1="{num(py)}" x2="{num(self.width)}" y2="{num(py)}" '
            f'stroke="{mark["colour"]}" stroke-width="1.4" stroke-dasharray="{mark["dash"]}"/>'
        )

    def _legend_svg(self, top: float) -> str:
        out = []
        for row_number, row in enumerate(self._legend_rows):
            py = top + 15 * row_number + 6
            for px, entry in row:
                out.append(_swatch(px, py, entry))
                out.append(
                    f'<text x="{num(px + 24)}" y="{num(py + 3.5)}">{esc(entry.label)}</text>'
                )
        return "".join(out)


def _polyline(points: list[tuple[float, float]], mark: dict[str, Any]) -> str:
    colour = mark["colour"]
    dash = f' stroke-dasharray="{mark["dash"]}"' if mark.get("dash") else ""
    path = " ".join(f"{num(a)},{num(b)}" for a, b in points)
    out = [
        f'<polyline points="{path}" fill="none" stroke="{colour}" '
        f'stroke-width="{mark["width"]:g}"{dash} stroke-linejoin="round"/>'
    ]
    out += (
        [marker(mark.get("marker"), a, b, colour) for a, b in points] if mark.get("marker") else []
    )
    return "".join(out)


def _swatch(x: float, y: float, entry: Entry) -> str:
    if entry.kind == "box":
        corner = f'x="{num(x)}" y="{num(y - 4)}"'
        box = f'<rect {corner} width="18" height="8" fill="{{}}" fill-opacity="{{}}"{{}}/>'
        below = box.format(entry.under[0], f"{entry.under[1]:g}", "") if entry.under else ""
        dash = f' stroke="{entry.colour}" stroke-dasharray="{entry.dash}"' if entry.dash else ""
        return below + box.format(entry.colour, f"{entry.opacity:g}", dash)
    dash = f' stroke-dasharray="{entry.dash}"' if entry.dash else ""
    line = (
        f'<line x1="{num(x)}" y1="{num(y)}" x2="{num(x + 18)}" y2="{num(y)}" '
        f'stroke="{entry.colour}" stroke-width="1.6"{dash}/>'
    )
    return line + (marker(entry.marker, x + 9, y, entry.colour) if entry.marker else "")


def _legend_rows(entries: list[Entry], width: float) -> list[list[tuple[float, Entry]]]:
    """Legend entries flowed into rows of at most `width` px, starting at x = 8."""
    rows: list[list[tuple[float, Entry]]] = []
    x = width + 1
    for entry in entries:
        size = 24 + text_width(entry.label) + 14
        if x + size > width:
            rows.append([])
            x = 8.0
        rows[-1].append((x, entry))
        x += size
    return rows
