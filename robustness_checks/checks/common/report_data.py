"""Data for the report's pictures: score histograms, confusion matrices, error rows, saliency."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robustness_checks.checks.common.inputs import PICTURED_INPUT, SMALL_INPUT
from robustness_checks.checks.common.thumbnails import shrink_peak, thumbnail_rows
from robustness_checks.details import ExampleRow
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.watch import CheckTimeout
from robustness_checks.reporting.images import SHOWN_EXAMPLES

HISTOGRAM_BINS = 20
CONFUSION_CLASSES = 30  # full matrix up to this many classes, else the most confused pairs
MOST_CONFUSED = 20


def score_histogram(
    score: str, panels: list[tuple[str, dict[str, np.ndarray]]], bins: int = HISTOGRAM_BINS
) -> dict[str, Any]:
    """Counts of each group's finite scores in equal-width bins shared by all panels."""
    arrays = [np.asarray(v, dtype=np.float64) for _, groups in panels for v in groups.values()]
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(0)
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if not hi > lo:
        hi = lo + (abs(lo) * 1e-3 or 1e-3)
    edges = np.linspace(lo, hi, bins + 1)

    def counts(values: np.ndarray) -> list[int]:
        values = np.asarray(values, dtype=np.float64)
        return np.histogram(values[np.isfinite(values)], edges)[0].tolist()

    return {
        "score": score,
        "edges": [float(e) for e in edges],
        "panels": [
            {"label": label, "counts": {name: counts(v) for name, v in groups.items()}}
            for label, groups in panels
        ],
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> dict[str, Any]:
    """Counts of (true label, prediction), or the most confused pairs for many classes."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, np.int64)
    flat = np.bincount(labels * classes + predictions, minlength=classes * classes)
    counts = flat[: classes * classes].reshape(classes, classes)
    if classes <= CONFUSION_CLASSES:
        return {"classes": classes, "counts": counts.tolist()}
    off = counts.copy()
    np.fill_diagonal(off, 0)
    top = np.argsort(off, axis=None, kind="stable")[::-1][:MOST_CONFUSED]
    return {
        "classes": classes,
        "correct": int(np.trace(counts)),
        "total": int(counts.sum()),
        "most_confused": [
            [int(i // classes), int(i % classes), int(off.flat[i])] for i in top if off.flat[i]
        ],
    }


def input_saliency(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """|d logit_label / d x| per input, by plain autograd (what captum's Saliency computes)."""
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        logits = model(x)
        picked = logits.float().gather(1, labels.view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(picked, x)
    return gradient.detach().abs()


def add_saliency(context: CheckContext, rows: list[ExampleRow]) -> dict[str, Any] | None:
    """Give the shown rows with pixels a `saliency` map at the example they show (input plus
    perturbation): |d logit_label / d x|, the largest over channels, scaled to [0, 1] by its
    `saliency_max` (at full size, then shrunk to a thumbnail row's size by its largest value per
    block). For the report only, so these passes stay out of `evaluations`; returns a summary for
    details (None when no row has pixels). Every row's full-size `pixels` are released."""
    # Plain autograd instead of captum: one forward and one backward pass on at most
    # SHOWN_EXAMPLES inputs, through the counted model wrapper (precision, memory format, time
    # limit); captum's Saliency is the same gradient, and importing captum costs about a second.
    try:
        return _saliency(context, rows)
    finally:
        for row in rows:
            row.pixels = None


def _saliency(context: CheckContext, rows: list[ExampleRow]) -> dict[str, Any] | None:
    dtype = context.examples.x.dtype if context.examples.x.is_floating_point() else torch.float32
    found = [(row, x) for row in rows if (x := _example(row, dtype)) is not None][:SHOWN_EXAMPLES]
    found = [(row, x) for row, x in found if x.shape == found[0][1].shape]
    if not found:
        return None
    chosen = [row for row, _ in found]
    before = context.counter.count
    x = torch.stack([x for _, x in found]).to(context.device, dtype)
    labels = torch.tensor([row.label for row in chosen], device=context.device)
    try:
        maps = input_saliency(context.model, x, labels)
    except CheckTimeout:
        raise
    except Exception as error:  # a picture must never decide or break a check
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        context.counter.count = before
    maps = (maps.amax(dim=1) if maps.dim() == 4 else maps).detach().cpu().double()
    for row, plane in zip(chosen, maps, strict=True):
        largest = float(plane.max())
        if row.source_shape is not None and row.shape:
            plane = shrink_peak(plane.reshape(1, *plane.shape[-2:]), row.shape[1:])
        scaled = plane.flatten() / largest if largest > 0 else plane.flatten()
        row.saliency = [round(float(v), 3) for v in scaled]
        row.saliency_max = float(f"{largest:.6g}")
    return {
        "method": "input gradient |d logit(label) / d x| at the example shown, max over channels",
        "examples": len(chosen),
        "forward_passes": len(chosen),
        "backward_passes": len(chosen),
        "in_evaluations": False,
    }


def _example(row: ExampleRow, dtype: torch.dtype) -> torch.Tensor | None:
    """The example a row shows, at the model's input size: its kept full-size pixels, or its
    input plus perturbation; None for a thumbnail whose full-size pixels are gone."""
    if row.pixels is not None:
        return torch.as_tensor(row.pixels).reshape(row.source_shape or row.shape or [-1])
    if row.input is None or not row.shape or row.source_shape is not None:
        return None
    x = torch.tensor(row.input, dtype=dtype)
    if row.perturbation is not None:
        x = x + torch.tensor(row.perturbation)
    return x.reshape(row.shape)


def error_examples(
    context: CheckContext,
    wrong: np.ndarray,
    scores: np.ndarray,
    predictions: np.ndarray,
    score: str,
) -> list[dict[str, Any]]:
    """The errors the score ranks as least uncertain (the ones it misses most), with pixels."""
    x = context.examples.x
    order = np.flatnonzero(wrong)[np.argsort(scores[wrong], kind="stable")][:SHOWN_EXAMPLES]
    return [
        {
            "index": int(i),
            "label": int(context.examples.y[i]),
            "prediction": int(predictions[i]),
            "score": float(scores[i]),
            "score_name": score,
            **_pixels(x[int(i)]),
        }
        for i in order
    ]


def _pixels(x: torch.Tensor) -> dict[str, Any]:
    """An unperturbed example's pixels: all of a small one, a thumbnail of a larger one."""
    if x.numel() <= SMALL_INPUT:
        return {"shape": list(x.shape), "input": [round(v, 5) for v in x.flatten().tolist()]}
    found = thumbnail_rows(x, x) if x.numel() <= PICTURED_INPUT else {}
    found.pop("perturbation", None)
    return found
