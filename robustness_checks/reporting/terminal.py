"""The end-of-session table: one line per check with value, bound and outcome."""

from __future__ import annotations

import unicodedata
from typing import Any

from robustness_checks.results import format_number


def safe_text(text: str) -> str:
    """`text` with control characters and lone surrogates escaped ('\\x1b', '\\udc80'), so a
    name or message cannot move the cursor, colour the terminal or break its encoding."""
    out = []
    for char in str(text):
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or (category == "Cf" and char not in "\u200d"):
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def summary_lines(results: list[dict[str, Any]]) -> list[str]:
    """Aligned table rows for the terminal summary."""
    compared = any(r.get("baseline") for r in results)
    header = ("check", "type", "metric", "value", "bound", "CI", "outcome", "time")
    if compared:
        header = (*header[:4], "baseline", "delta", *header[4:])
    rows = [header]
    for record in results:
        bound = ""
        if record.get("comparison") and record.get("threshold") is not None:
            bound = f"{record['comparison']} {format_number(record['threshold'])}"
        ci = record.get("ci")
        interval = f"[{format_number(ci[0])}, {format_number(ci[1])}]" if ci else ""
        value = record.get("value")
        row = [
            safe_text(record.get("id") or record["nodeid"]),
            record["type"],
            record["metric"],
            "" if value is None else format_number(value),
            bound,
            interval,
            record["outcome"],
            f"{record.get('seconds', 0.0):.2f}s",
        ]
        if compared:
            row[4:4] = baseline_cells(record)
        rows.append(tuple(row))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def baseline_cells(record: dict[str, Any]) -> list[str]:
    """The baseline's value and the change since, for a record compared with a baseline; only
    between equal metrics (a check whose deciding metric changed shows which it was)."""
    found = record.get("baseline") or {}
    before, metric, now = found.get("value"), found.get("metric"), record.get("value")
    if found.get("status") == "not comparable":
        return ["not comparable", ""]
    if metric is not None and metric != record.get("metric"):
        return [f"({metric})", ""]
    if before is None or now is None:
        return ["", ""]
    return [format_number(before), f"{now - before:+.3g}"]


def regression_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per gated failure, with its reason."""
    return [
        safe_text(f"regression: {r.get('id') or r['nodeid']}: {r['regression']}")
        for r in results
        if r.get("regression")
    ]


def warning_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per warning of a check (a model returning probabilities, gradient masking, a
    device fallback), after the table; none when no check warned."""
    lines = []
    for record in results:
        for message in record.get("warnings") or []:
            lines.append(safe_text(f"warning: {record.get('id') or record['nodeid']}: {message}"))
    return lines
