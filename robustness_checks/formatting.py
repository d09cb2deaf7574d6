"""Numbers as people read them in messages and tables."""

from __future__ import annotations

import math

from robustness_checks.spec.numbers import Written


def format_number(value: float) -> str:
    """Three significant digits, plain notation where it reads better; a number the spec wrote
    as text (eps: 8/255) as it was written."""
    if isinstance(value, Written):
        return value.text
    if value is None or not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.4g}"
    return f"{value:.3g}"
