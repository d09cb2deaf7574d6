"""The self-contained HTML report: summary table, a section per check with its plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from robustness_checks.reporting.atomic import write_text_atomic
from robustness_checks.reporting.plots import example_images, extra_figures, plot_for
from robustness_checks.reporting.terminal import baseline_cells
from robustness_checks.reporting.trend import trend_svg
from robustness_checks.results import format_number, record_result

_BULKY_KEYS = {"input", "perturbation", "history", "saliency", "counts", "edges"}


def render_html(
    document: dict[str, Any], history: dict[str, list[dict[str, Any]]] | None = None
) -> str:
    """HTML for a results document (the JSON file's content); `history` (node id -> points of
    saved baselines, `gating.history.check_series`) adds a trend line per check."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("robustness_checks.reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    results = [_view(record) for record in document.get("results", [])]
    for view in results:
        view["trend"] = trend_svg((history or {}).get(view["nodeid"], []), view.get("value"))
    counts = {
        key: sum(r["outcome"] == key for r in results)
        for key in ("passed", "failed", "inconclusive", "error", "skipped")
    }
    return environment.get_template("report.html.j2").render(
        compared=any(r.get("baseline") for r in results),
        created=document.get("created", ""),
        environment=_environment_rows(document.get("environment") or {}),
        specs=document.get("specs", {}),
        results=results,
        counts=counts,
    )


def write_html(
    path: str | Path, document: dict[str, Any], history: dict[str, Any] | None = None
) -> Path:
    """Write the report atomically."""
    return write_text_atomic(path, render_html(document, history))


def _view(record: dict[str, Any]) -> dict[str, Any]:
    value = record.get("value")
    ci = record.get("ci")
    bound = ""
    if record.get("comparison") and record.get("threshold") is not None:
        bound = f"{record['comparison']} {format_number(record['threshold'])}"
    result = record_result(record)
    return {
        **record,
        "value_text": "" if value is None else format_number(value),
        "level_text": f"{100 * (record.get('confidence') or 0.95):g}%",
        "ci_text": f"{format_number(ci[0])} to {format_number(ci[1])}" if ci else "",
        "bound_text": bound,
        "baseline_cells": baseline_cells(record),
        "baseline_name": (record.get("baseline") or {}).get("name", ""),
        "message": record.get("message") or record.get("error") or "",
        "plot": _safe(plot_for, result),
        "images": _safe(example_images, result),
        "images_caption": _images_caption(result),
        "figures": _safe(extra_figures, result) or [],
        "details_text": json.dumps(_trimmed(record.get("details", {})), indent=2),
    }


def _safe(render: Any, result: Any) -> Any:
    """A plot that fails to draw must not lose the report (nor does a result whose details
    cannot be read as its type's: it has no pictures)."""
    if result is None:
        return [] if render is extra_figures else None
    try:
        return render(result)
    except Exception as error:
        text = f"<p>(plot unavailable: {type(error).__name__}: {error})</p>"
        return [(text, "")] if render is extra_figures else text


def _environment_rows(found: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows of the environment block; the commit says whether the tree was dirty."""
    rows = []
    for key, value in found.items():
        if key == "git_dirty":
            continue
        text = "(not available)" if value is None else str(value)
        if key == "git":
            key = "git commit"
            if found.get("git_dirty"):
                text += " (with uncommitted changes)"
        rows.append((key, text))
    return rows


def _images_caption(result: Any) -> str:
    """What the failing-example pictures show, for the figure caption."""
    rows = [] if result is None else result.details.shown_examples()
    if rows and rows[0].prediction is not None:
        return (
            "errors the score ranks as most certain (the ones it misses), with the saliency of "
            "the true label's logit"
        )
    eps = rows[0].eps if rows else None
    at = f" at eps {eps:g} (the largest)" if eps is not None else ""
    return f"failing examples{at}: input, perturbation, perturbed input and saliency"


def _trimmed(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: ("[...]" if key in _BULKY_KEYS else _trimmed(item)) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_trimmed(item) for item in value[:50]] + (["..."] if len(value) > 50 else [])
    return value
