"""Failing examples as pictures (input, perturbation, perturbed input, saliency) in SVG: small
inputs as PNG scaled up by whole pixels, thumbnails of large ones as JPEG, within a byte budget."""

from __future__ import annotations

import base64
import io
import math
import struct
import textwrap
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustness_checks.reporting.svg import esc, num, svg_root, text_width

SHOWN_EXAMPLES = 6  # failing examples drawn per check (checks compute saliency for these only)
PANEL = 64  # px per picture
PICTURE_BUDGET = 3_000_000  # bytes of example pictures (data: URIs) in one report
JPEG_QUALITY = 85
FAIL_COLOUR = "#c62828"
Result = Any  # robustness_checks.results.CheckResult
Row = Any  # robustness_checks.details.ExampleRow

# Colour maps as anchor colours spread evenly over [0, 1] (matplotlib's coolwarm and magma).
COOLWARM = [(59, 76, 192), (98, 130, 234), (141, 176, 254), (185, 208, 249), (221, 220, 220),
            (245, 196, 172), (244, 152, 122), (221, 95, 75), (180, 4, 38)]  # fmt: skip
MAGMA = [(0, 0, 4), (29, 17, 71), (81, 18, 124), (131, 38, 129), (183, 55, 121), (231, 82, 99),
         (252, 137, 97), (254, 196, 136), (252, 253, 191)]  # fmt: skip
GREY = [(0, 0, 0), (255, 255, 255)]


def png_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a data: URI holding a PNG."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + bytes(row) for row in np.ascontiguousarray(rgb, dtype=np.uint8))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
    return "data:image/png;base64," + base64.b64encode(png + chunk(b"IEND", b"")).decode()


def colour_map(values: np.ndarray, anchors: list[tuple[int, int, int]]) -> np.ndarray:
    """Values in [0, 1] to uint8 RGB by linear interpolation between anchor colours."""
    clipped = np.nan_to_num(np.clip(values, 0.0, 1.0))
    positions = np.linspace(0.0, 1.0, len(anchors))
    table = np.array(anchors, dtype=np.float64)
    channels = [np.interp(clipped, positions, table[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def jpeg_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a data: URI holding a JPEG (PNG without Pillow)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return png_uri(rgb)
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def encode(rgb: np.ndarray, thumbnail: bool = False, size: float = PANEL) -> str:
    """The data: URI of a picture: a thumbnail as JPEG at its own size, a small image as PNG
    scaled up by whole pixels (so it stays sharp wherever it is shown)."""
    if thumbnail:
        return jpeg_uri(rgb)
    factor = max(1, int(size // max(rgb.shape[:2])))
    big = rgb.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else rgb
    return png_uri(big)


def place(
    uri: str, shape: tuple[int, ...], x: float, y: float, size: float = PANEL, smooth: bool = False
) -> str:
    """An <image> of an encoded picture of `shape` (H, W, ...) in a box of `size` px, framed."""
    height = size * shape[0] / max(shape[:2])
    width = size * shape[1] / max(shape[:2])
    style = "" if smooth else ' style="image-rendering:pixelated"'
    return (
        f'<image x="{num(x)}" y="{num(y)}" width="{num(width)}" height="{num(height)}" '
        f'preserveAspectRatio="none"{style} href="{uri}"/>'
        f'<rect x="{num(x)}" y="{num(y)}" width="{num(width)}" height="{num(height)}" '
        'fill="none" stroke="#555" stroke-width="0.6"/>'
    )


@dataclass
class PictureBudget:
    """The bytes of example pictures one report may still hold, spent check by check."""

    limit: int = PICTURE_BUDGET
    spent: int = 0

    def afford(self, size: int) -> bool:
        """Spend `size` bytes if they fit; False (nothing spent) when they do not."""
        if self.spent + size > self.limit:
            return False
        self.spent += size
        return True


def colour_bar(
    y: float, anchors: list[tuple[int, int, int]], low: str, high: str, text: str
) -> str:
    """One line of scale: low label, a colour strip, high label, then what it measures."""
    strip = colour_map(np.linspace(0, 1, 64)[None, :], anchors)
    return (
        f'<text x="40" y="{num(y + 7.5)}" text-anchor="end" font-size="9">{esc(low)}</text>'
        f'<image x="44" y="{num(y)}" width="72" height="9" preserveAspectRatio="none" '
        f'href="{png_uri(strip)}"/><rect x="44" y="{num(y)}" width="72" height="9" fill="none" '
        f'stroke="#555" stroke-width="0.5"/><text x="120" y="{num(y + 7.5)}" font-size="9">'
        f'{esc(high)}</text><text x="166" y="{num(y + 7.5)}" font-size="9">{esc(text)}</text>'
    )


def example_images(result: Result, budget: PictureBudget | None = None) -> str | None:
    """Input, perturbation, perturbed input and saliency of each failing example, one SVG;
    with a `budget`, rows that no longer fit in it are left out and a note says so."""
    rows = [row for row in result.details.shown_examples() if _is_image(row)][:SHOWN_EXAMPLES]
    if not rows:
        return None
    perturbed = any(row.perturbation is not None for row in rows)
    salient = any(row.saliency is not None for row in rows)
    columns = ["input"]
    if perturbed:
        columns += ["perturbation", "perturbed input"]
    if salient:
        columns.append("saliency")
    limit = max((_largest(row.perturbation) for row in rows), default=0.0) or 1.0
    lo, hi = _value_range(rows)
    drawn: list[tuple[Row, list[str]]] = []
    for row in rows:
        pictures = _pictures(row, lo, hi, limit, perturbed, salient)
        uris = [encode(p, row.source_shape is not None) for p in pictures]
        if budget is not None and not budget.afford(sum(map(len, uris))):
            break
        drawn.append((row, uris))
    return _layout(drawn, columns, limit, len(rows) - len(drawn), budget)


def _pictures(
    row: Row, lo: float, hi: float, limit: float, perturbed: bool, salient: bool
) -> list[np.ndarray]:
    """RGB pictures of a row: input, then perturbation and perturbed input, then saliency."""
    shape = row.shape
    image = _planes(row.input, shape)
    found = [_rgb(image, lo, hi)]
    if perturbed:
        delta = _planes(row.perturbation or [0.0] * len(row.input), shape)
        found.append(colour_map(delta.mean(axis=0) / (2 * limit) + 0.5, COOLWARM))
        found.append(_rgb(image + delta, lo, hi))
    if salient:
        saliency = row.saliency
        plane = np.zeros(shape[1:]) if saliency is None else np.reshape(saliency, shape[1:])
        found.append(colour_map(np.asarray(plane, dtype=np.float64), MAGMA))
    return found


def _layout(
    drawn: list[tuple[Row, list[str]]],
    columns: list[str],
    limit: float,
    dropped: int,
    budget: PictureBudget | None,
) -> str:
    """The rows of pictures with their captions, the colour scales and a note on rows left out."""
    step = PANEL + 12
    text_x = len(columns) * step + 4
    width, top, row_height = text_x + 250, 18.0, PANEL + 10
    parts = [
        f'<text x="{num(i * step + PANEL / 2)}" y="12" text-anchor="middle" '
        f'font-size="10">{esc(name)}</text>'
        for i, name in enumerate(columns)
    ]
    for r, (row, uris) in enumerate(drawn):
        y = top + r * row_height
        shape = tuple(row.shape[1:])
        smooth = row.source_shape is not None
        parts += [place(uri, shape, i * step, y, smooth=smooth) for i, uri in enumerate(uris)]
        parts.append(_caption(row, text_x, y))
    y = top + len(drawn) * row_height + 2
    scales = []
    if "perturbation" in columns:
        scales.append(
            (COOLWARM, f"−{limit:.3g}", f"+{limit:.3g}", "perturbation (channel mean), one scale")
        )
    if "saliency" in columns:
        scales.append((MAGMA, "0", "max", "saliency |∂ logit(label) / ∂x|, max per row"))
    if not drawn:
        parts, scales = [], []
    for k, (anchors, low, high, text) in enumerate(scales):
        bar = colour_bar(y + 14 * k, anchors, low, high, text)
        if budget is not None:
            budget.spent += len(bar)
        parts.append(bar)
    longest = max((text_width(text, 9) for *_, text in scales), default=0.0)
    width = max(width, 170 + longest)
    y += 14 * len(scales) + 2
    if dropped:
        shown = budget.limit / 1e6 if budget is not None else 0
        note = (
            f"{dropped} more failing example{'s' * (dropped > 1)} not drawn: this report's "
            f"pictures reached their bound of {shown:.3g} MB"
        )
        parts.append(
            f'<text x="0" y="{num(y + 10)}" font-size="10" fill="{FAIL_COLOUR}">{esc(note)}</text>'
        )
        width, y = max(width, text_width(note) + 4), y + 16
    return svg_root(width, y, "".join(parts))


def _caption(row: Row, x: float, y: float) -> str:
    """Up to four lines beside a row: index, label, predictions, and what perturbed it."""
    lines = [f"#{row.index}  label {row.label}"]
    after = row.adversarial_prediction
    confidence = row.adversarial_confidence
    if after is None:
        after, confidence = row.perturbed_prediction, row.perturbed_confidence
    if row.clean_prediction is not None:
        lines.append(f"clean: {row.clean_prediction} ({_p(row.clean_confidence)})")
    if after is not None:
        lines.append(f"perturbed: {after} ({_p(confidence)})")
    elif row.prediction is not None:
        tail = "" if row.score is None else f", {row.score_name or ''} score {row.score:.3g}"
        lines.append(f"predicted: {row.prediction}{tail}")
    if row.eps is not None:
        size = row.perturbation_norm
        name = {"inf": "‖δ‖∞", "2": "‖δ‖₂"}.get(str(row.norm), "‖δ‖")
        lines.append(f"eps {row.eps:.3g}" + ("" if size is None else f", {name} {size:.3g}"))
    elif row.perturbations:
        lines += textwrap.wrap(_describe(row.perturbations), 46)
    out = []
    for i, line in enumerate(lines[:5]):
        colour = f' fill="{FAIL_COLOUR}"' if line.startswith(("perturbed", "predicted")) else ""
        out.append(
            f'<text x="{num(x)}" y="{num(y + 12 + 14 * i)}" font-size="10"{colour}>'
            f"{esc(line)}</text>"
        )
    return "".join(out)


def _describe(perturbations: list[dict[str, Any]]) -> str:
    """A fuzz failure's perturbations in short, e.g. 'brightness +0.41, L-inf 0.08'."""
    parts = []
    for entry in perturbations:
        kind, p = entry.get("kind"), entry.get("params") or {}
        if kind in ("linf", "l2", "gaussian") and p.get("magnitude"):
            name = {"linf": "L-inf noise", "l2": "L2 noise", "gaussian": "Gaussian sigma"}[kind]
            parts.append(f"{name} {p['magnitude']:.3g}")
        elif kind == "brightness" and p.get("delta"):
            parts.append(f"brightness {p['delta']:+.3g}")
        elif kind == "contrast" and p.get("factor", 1) != 1:
            parts.append(f"contrast x{p['factor']:.3g}")
        elif kind == "rotate" and p.get("angle"):
            parts.append(f"rotation {p['angle']:+.3g}°")
        elif kind == "translate" and (p.get("dx") or p.get("dy")):
            parts.append(f"shift {p.get('dx', 0):+g}, {p.get('dy', 0):+g} px")
        elif kind == "occlusion" and p.get("size"):
            parts.append(f"{p['size']}x{p['size']} patch at ({p.get('top')}, {p.get('left')})")
    return ", ".join(parts) or "no perturbation"


def _p(value: Any) -> str:
    return "?" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _is_image(row: Row) -> bool:
    shape = row.shape or []
    return len(shape) == 3 and shape[0] in (1, 3) and row.input is not None


def _planes(values: list[float], shape: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(shape)


def _largest(values: list[float] | None) -> float:
    return float(np.abs(np.asarray(values)).max()) if values else 0.0


def _value_range(rows: list[Row]) -> tuple[float, float]:
    """The grey scale of the pictures: [0, 1], widened to the inputs' range."""
    values = np.concatenate([np.asarray(row.input, dtype=np.float64) for row in rows])
    return min(0.0, float(values.min())), max(1.0, float(values.max()))


def _rgb(planes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(C, H, W) values as RGB: grey for one channel, colour for three."""
    scaled = np.clip((planes - lo) / (hi - lo), 0.0, 1.0)
    if planes.shape[0] == 1:
        return colour_map(scaled[0], GREY)
    return (scaled.transpose(1, 2, 0) * 255).round().astype(np.uint8)
