"""Axis ticks and scales for the SVG charts: round linear ticks, log decades, label fitting."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from robustness_checks.reporting.svg import text_width

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
MOST_LOG_LABELS = 5  # labelled decades on a log axis at most


def decimals(step: float) -> int:
    """Decimals needed to write multiples of `step` exactly."""
    for places in range(12):
        scaled = step * 10**places
        if abs(scaled - round(scaled)) < 1e-6 * max(scaled, 1):
            return places
    return 12


def linear_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round tick values (1, 2, 2.5 or 5 times a power of ten) in [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def linear_label(value: float, step: float) -> str:
    """A tick label with as many decimals as the step needs."""
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    text = f"{value:.{decimals(step)}f}"
    return "0" if float(text) == 0 else text


def power_label(value: float) -> str:
    """10 to a power, or m x 10 to a power, with superscript digits."""
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10**exponent)
    power = f"10{str(exponent).translate(SUPERSCRIPT)}"
    return power if mantissa == 1 else f"{mantissa}×{power}"


def log_ticks(lo: float, hi: float, finer: bool = False) -> list[float]:
    """Decades in [lo, hi]; with 2x and 5x ones when asked or when fewer than two decades fit."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**k for k in range(first, last + 1) if lo <= 10.0**k <= hi * (1 + 1e-9)]
    if len(decades) >= 2 and not finer:
        return decades
    found = [m * 10.0**k for k in range(first, last + 1) for m in (1, 2, 5)]
    return [v for v in found if lo <= v <= hi * (1 + 1e-9)]


@dataclass
class Scale:
    """Data range [lo, hi] mapped onto pixels [start, end] (linear or log10)."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(max(value, 1e-300))
            lo, hi = math.log10(self.lo), math.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        span = hi - lo or 1.0
        return self.start + (value - lo) / span * (self.end - self.start)


def data_range(values: Sequence[float], log: bool, pad: float = 0.05) -> tuple[float, float]:
    """A padded range around finite values (positive ones on a log axis)."""
    finite = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not finite:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if log:
        a, b = math.log10(lo), math.log10(hi)
        margin = max((b - a) * pad, 0.15)
        return 10 ** (a - margin), 10 ** (b + margin)
    if hi == lo:
        margin = abs(lo) * 0.1 or 0.5
        return lo - margin, hi + margin
    margin = (hi - lo) * pad
    return lo - margin, hi + margin


def short_label(value: float) -> str:
    """A compact label for a given tick value."""
    if value == 0:
        return "0"
    return f"{value:.4g}"


def fits(
    ticks: Sequence[float], labels: Sequence[str], span: float, length: float, vertical: bool
) -> bool:
    """Whether neighbouring tick labels keep clear of each other."""
    for (a, la), (b, lb) in itertools.pairwise(zip(ticks, labels, strict=True)):
        gap = abs(b - a) / span * length
        need = 13 if vertical else (text_width(la) + text_width(lb)) / 2 + 8
        if gap < need:
            return False
    return True


def sparse_decades(
    decades: list[float], length: float, vertical: bool, most: int = MOST_LOG_LABELS
) -> list[tuple[float, str]]:
    """Labels at every k-th decade (k = 1, 2, 3, 5, 10, ...: the first that leaves at most
    `most` labels, each clear of the next) and unlabelled ticks at the decades between."""
    powers = [round(math.log10(v)) for v in decades]
    span = (powers[-1] - powers[0]) or 1
    for k in itertools.chain((1, 2, 3, 5), (m * 10**e for e in range(1, 6) for m in (1, 2, 5))):
        labelled = [p for p in powers if p % k == 0] or powers[:1]
        labels = [power_label(10.0**p) for p in labelled]
        gap = min((b - a for a, b in itertools.pairwise(labelled)), default=span)
        clear = gap / span * length >= (28 if vertical else 0)
        if len(labelled) <= most and clear and fits(labelled, labels, span, length, vertical):
            break
    minor = len(powers) <= 2 * length / 6  # unlabelled decade ticks while they are 3 px apart
    return [
        (10.0**p, power_label(10.0**p) if p in labelled else "")
        for p in powers
        if p in labelled or minor
    ]


def axis_ticks(
    lo: float,
    hi: float,
    log: bool,
    length: float,
    vertical: bool = False,
    given: list[float] | None = None,
) -> list[tuple[float, str]]:
    """(value, label) ticks whose labels do not overlap along an axis of `length` px."""
    if log:
        ticks = log_ticks(lo, hi)
        if len(ticks) > 2 and all(power_label(v).startswith("10") for v in ticks):
            return sparse_decades(ticks, length, vertical)
        if len(ticks) < 4:
            finer = log_ticks(lo, hi, finer=True)
            labels = [power_label(v) for v in finer]
            place = [math.log10(v) for v in finer]
            span = math.log10(hi) - math.log10(lo)
            if fits(place, labels, span, length, vertical):
                ticks = finer
        return [(v, power_label(v)) for v in ticks]
    span = (hi - lo) or 1.0
    if given:
        inside = sorted({v for v in given if lo <= v <= hi})
        labels = [short_label(v) for v in inside]
        if fits(inside, labels, span, length, vertical):
            return list(zip(inside, labels, strict=True))
    for count in range(8 if not vertical else 6, 1, -1):
        ticks = linear_ticks(lo, hi, count)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else span
        labels = [linear_label(v, step) for v in ticks]
        if fits(ticks, labels, span, length, vertical):
            return list(zip(ticks, labels, strict=True))
    return [(lo, short_label(lo)), (hi, short_label(hi))]
