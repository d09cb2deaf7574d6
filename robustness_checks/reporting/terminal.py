"""The end-of-session table: one line per check with value, bound and outcome."""

from __future__ import annotations

from typing import Any

from robustness_checks.results import format_number


def summary_lines(results: list[dict[str, Any]]) -> list[str]:
    """Aligned table rows for the terminal summary."""
    header = ("check", "type", "metric", "value", "bound", "CI", "outcome", "time")
    rows = [header]
    for record in results:
        bound = ""
        if record.get("comparison") and record.get("threshold") is not None:
            bound = f"{record['comparison']} {format_number(record['threshold'])}"
        ci = record.get("ci")
        interval = f"[{format_number(ci[0])}, {format_number(ci[1])}]" if ci else ""
        value = record.get("value")
        rows.append(
            (
                record["nodeid"],
                record["type"],
                record["metric"],
                "" if value is None else format_number(value),
                bound,
                interval,
                record["outcome"],
                f"{record.get('seconds', 0.0):.2f}s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def warning_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per warning of a check (a model returning probabilities, gradient masking, a
    device fallback), after the table; none when no check warned."""
    lines = []
    for record in results:
        for message in record.get("warnings") or []:
            lines.append(f"warning: {record['nodeid']}: {message}")
    return lines
