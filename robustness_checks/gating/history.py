"""The saved baselines as a history: each check's value and cost over them, oldest to newest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from robustness_checks.results import format_number

SHORT = 8  # hex digits of a fingerprint shown


def read_history(storage: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs of `load_history`, and a line for each file in `storage` that is not a readable
    results file of schema_version 1 (it is left out)."""
    from robustness_checks.gating.baseline import BaselineError, load_baseline

    folder = Path(storage)
    runs: list[tuple[tuple[str, float], dict[str, Any]]] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            document = load_baseline(folder, str(path))
        except BaselineError as error:
            problems.append(f"skipped {path}: {error}")
            continue
        run = _run(path, document)
        runs.append(((run["created"] or "", path.stat().st_mtime), run))
    runs.sort(key=lambda pair: pair[0])
    return [run for _, run in runs], problems


def load_history(storage: str | Path) -> list[dict[str, Any]]:
    """Every baseline saved in `storage` (`--robustness-storage`, default `.robustness`), oldest
    first (by the document's `created`, then the file's modification time). Files that are not
    results documents of schema_version 1 are left out; a missing folder gives [].

    Each run is a dict:

    - `name` (str): the baseline name (`--robustness-save NAME`); `path` (str): its file;
    - `created` (str | None): ISO 8601 UTC time of the run, e.g. "2025-01-31T12:00:00Z";
    - `complete` (bool): False for a run saved with --robustness-save-partial after Ctrl-C;
    - `environment` (dict): python, torch, device (as in the results file);
    - `fingerprints` (dict): "model", "data" -> the sorted distinct sha256 values over the
      run's checks (one per spec that was run; empty where the results carry none);
    - `checks` (dict): node id -> {`check`, `spec`, `type`, `metric`, `value` (float | None),
      `outcome`, `passed`, `evaluations` (int | None), `seconds` (float | None), `examples`},
      in the order of the results file.

    For a per-check trend line, `check_series(runs)` turns this into node id -> points.
    """
    return read_history(storage)[0]


def check_series(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Node id -> one point per run that holds the check, oldest first: the check's entry of
    `load_history` plus `run` (the baseline name) and `created`."""
    series: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for nodeid, check in run["checks"].items():
            point = {"run": run["name"], "created": run["created"], **check}
            series.setdefault(nodeid, []).append(point)
    return series


def _run(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, dict[str, Any]] = {}
    prints: dict[str, set[str]] = {"model": set(), "data": set()}
    for record in document["results"]:
        checks[record["nodeid"]] = {
            "check": record.get("check"),
            "spec": record.get("spec"),
            "type": record.get("type"),
            "metric": record.get("metric"),
            "value": _number(record.get("value")),
            "outcome": record.get("outcome"),
            "passed": record.get("passed"),
            "evaluations": record.get("evaluations"),
            "seconds": _number(record.get("seconds")),
            "examples": record.get("examples"),
        }
        for key, found in prints.items():
            value = (record.get("fingerprints") or {}).get(key)
            if isinstance(value, str) and value:
                found.add(value)
    return {
        "name": str(document.get("baseline") or path.stem),
        "path": str(path),
        "created": document.get("created"),
        "complete": document.get("complete", True) is not False,
        "environment": document.get("environment") or {},
        "fingerprints": {key: sorted(found) for key, found in prints.items()},
        "checks": checks,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def history_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The history as aligned tables: the baselines, then each check's value and cost per run."""
    rows = [["#", "baseline", "created", "model", "data", "checks", "complete"]]
    for number, run in enumerate(runs, 1):
        rows.append(
            [
                str(number),
                run["name"],
                (run["created"] or "?").replace("T", " ").rstrip("Z"),
                _prints(run["fingerprints"]["model"]),
                _prints(run["fingerprints"]["data"]),
                str(len(run["checks"])),
                "yes" if run["complete"] else "no (partial)",
            ]
        )
    lines = _aligned(rows)
    checks = [["check", "metric", "#", "baseline", "value", "outcome", "evaluations", "seconds"]]
    numbers = {id(run): number for number, run in enumerate(runs, 1)}
    by_check: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run in runs:
        for nodeid, check in run["checks"].items():
            by_check.setdefault(nodeid, []).append((run, check))
    for nodeid, points in by_check.items():
        for index, (run, check) in enumerate(points):
            checks.append(
                [
                    nodeid if index == 0 else "",
                    str(check["metric"] or "") if index == 0 else "",
                    str(numbers[id(run)]),
                    run["name"],
                    "-" if check["value"] is None else format_number(check["value"]),
                    str(check["outcome"] or "-"),
                    "-" if check["evaluations"] is None else str(check["evaluations"]),
                    "-" if check["seconds"] is None else format_number(check["seconds"]),
                ]
            )
    return [*lines, "", *_aligned(checks)]


def _prints(values: list[str]) -> str:
    """A fingerprint shortened; '+N' when the run's specs have N more."""
    if not values:
        return "-"
    return values[0][:SHORT] + (f"+{len(values) - 1}" if len(values) > 1 else "")


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
