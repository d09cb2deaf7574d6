"""The end-of-session table: one line per check with value, bound and outcome."""

from __future__ import annotations

from typing import Any

from robustness_checks.results import format_number


def summary_lines(results: list[dict[str, Any]]) -> list[str]:
    """Aligned table rows for the terminal summary."""
    compared = any("baseline" in (r.get("details") or {}) for r in results)
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
            record["nodeid"],
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
    """The baseline's value and the change since, for a record compared with a baseline."""
    before = ((record.get("details") or {}).get("baseline") or {}).get("value")
    now = record.get("value")
    if before is None or now is None:
        return ["", ""]
    return [format_number(before), f"{now - before:+.3g}"]


def regression_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per gated failure, with its reason."""
    return [f"regression: {r['nodeid']}: {r['regression']}" for r in results if r.get("regression")]


def warning_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per warning of a check (a model returning probabilities, gradient masking, a
    device fallback), after the table; none when no check warned."""
    lines = []
    for record in results:
        for message in record.get("warnings") or []:
            lines.append(f"warning: {record['nodeid']}: {message}")
    return lines
