"""The self-contained HTML report: summary table, a section per check with its plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from robustness_checks.reporting.atomic import write_text_atomic
from robustness_checks.reporting.distributions import confusion_matrix
from robustness_checks.reporting.images import PICTURE_BUDGET, PictureBudget
from robustness_checks.reporting.partial import partial_work
from robustness_checks.reporting.plots import example_images, extra_figures, plot_for
from robustness_checks.reporting.terminal import baseline_cells
from robustness_checks.reporting.trend import trend_svg
from robustness_checks.results import format_number, record_result

_BULKY_KEYS = {"input", "perturbation", "history", "saliency", "counts", "edges"}


def render_html(
    document: dict[str, Any],
    history: dict[str, list[dict[str, Any]]] | None = None,
    picture_budget: int = PICTURE_BUDGET,
) -> str:
    """HTML for a results document (the JSON file's content); `history` (node id -> points of
    saved baselines, `gating.history.check_series`) adds a trend line per check. The failing
    examples' pictures of all checks together hold at most `picture_budget` bytes."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("robustness_checks.reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    budget = PictureBudget(picture_budget)
    records = document.get("results", [])
    results = [_view(record, budget, f"check-{n}") for n, record in enumerate(records, start=1)]
    share_confusion_matrices(results, records)
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


def _view(record: dict[str, Any], budget: PictureBudget, anchor: str) -> dict[str, Any]:
    value = record.get("value")
    ci = record.get("ci")
    bound = ""
    if record.get("comparison") and record.get("threshold") is not None:
        bound = f"{record['comparison']} {format_number(record['threshold'])}"
    result = record_result(record)
    return {
        **record,
        "anchor": anchor,
        "value_text": "" if value is None else format_number(value),
        "level_text": f"{100 * (record.get('confidence') or 0.95):g}%",
        "ci_text": f"{format_number(ci[0])} to {format_number(ci[1])}" if ci else "",
        "bound_text": bound,
        "baseline_cells": baseline_cells(record),
        "baseline_name": (record.get("baseline") or {}).get("name", ""),
        "message": record.get("message") or record.get("error") or "",
        "partial": partial_work(record),
        "plot": _safe(plot_for, result),
        "images": _safe(lambda found: example_images(found, budget), result),
        "images_caption": _images_caption(result),
        "figures": _safe(lambda found: extra_figures(found, matrix=False), result, []),
        "matrix": None if _errored(result) else _safe(confusion_matrix, result),
        "details_text": json.dumps(_trimmed(record.get("details", {})), indent=2),
    }


def share_confusion_matrices(views: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    """One confusion matrix per model and data set: a later section with the same matrix (same
    model fingerprint, same counts) links to the first section's instead of drawing it again.
    The counts stand for the data: an ood check's data fingerprint also covers its OOD inputs,
    so it differs from a calibration check's on the same examples, while its matrix does not."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for view, record in zip(views, records, strict=True):
        if not view.get("matrix") or view["matrix"].startswith("<p>"):
            continue
        prints = record.get("fingerprints") or {}
        model = prints.get("model") or f"spec {record.get('spec') or record.get('nodeid')}"
        counts = json.dumps((record.get("details") or {}).get("confusion_matrix"), sort_keys=True)
        owner = first.setdefault((model, counts), view)
        if owner is view:
            view["matrix_anchor"] = f"{view['anchor']}-confusion"
            view["matrix_users"] = []
            view["matrix_prints"] = _short_prints(prints)
            continue
        view["matrix"] = None
        view["matrix_ref"] = {"href": owner["matrix_anchor"], "check": owner["check"]}
        owner["matrix_users"].append({"href": view["anchor"], "check": view["check"]})


def _short_prints(prints: dict[str, Any]) -> str:
    """'model 1a2b3c4d, data 5e6f7a8b' from a record's fingerprints ('' without them)."""
    found = [f"{key} {prints[key][:8]}" for key in ("model", "data") if prints.get(key)]
    return ", ".join(found)


def _errored(result: Any) -> bool:
    return result is None or result.outcome == "error"


def _safe(render: Any, result: Any, empty: Any = None) -> Any:
    """A plot that fails to draw must not lose the report (nor does a result whose details
    cannot be read as its type's: it has no pictures)."""
    if result is None:
        return empty
    try:
        return render(result)
    except Exception as error:
        text = f"<p>(plot unavailable: {type(error).__name__}: {error})</p>"
        return [(text, "")] if isinstance(empty, list) else text


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
        text = (
            "errors the score ranks as most certain (the ones it misses), with the saliency of "
            "the true label's logit"
        )
    else:
        eps = rows[0].eps if rows else None
        at = f" at eps {eps:g} (the largest)" if eps is not None else ""
        text = f"failing examples{at}: input, perturbation, perturbed input and saliency"
    large = next((row for row in rows if row.source_shape and row.shape), None)
    if large is not None:
        source = "×".join(map(str, large.source_shape))
        shown = "×".join(map(str, large.shape[1:]))
        text += (
            f". Inputs of {source} drawn as {shown} thumbnails: block means of the input, the "
            "largest change (perturbation) and the largest saliency in each block"
        )
    return text


def _trimmed(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: ("[...]" if key in _BULKY_KEYS else _trimmed(item)) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_trimmed(item) for item in value[:50]] + (["..."] if len(value) > 50 else [])
    return value
