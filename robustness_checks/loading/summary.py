"""What `validate` can tell about a spec without running it: data dtypes, shapes, label range."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustness_checks.spec.schema import DataSpec, Spec

# The x range is computed (from a memory-mapped .pt file or a loaded .npz) up to this many values.
MAX_RANGE_VALUES = 1 << 25


def spec_summary(spec: Spec, base_dir: Path) -> list[str]:
    """Lines describing the spec's data and what would go wrong with it, and notes on eps
    budgets that reach across the whole `bounds` box; reads no more than the tensors files."""
    from robustness_checks.checks.common.bounds import eps_beyond_bounds, perturbation_budgets

    lines: list[str] = []
    try:
        lines, dim = _data_lines("data", spec.data, base_dir, spec.bounds, labels=True)
        for index, check in enumerate(spec.checks):
            for name in type(check).model_fields:
                source = getattr(check, name)
                if isinstance(source, DataSpec):
                    where = f"checks[{index}].{name}"
                    lines += _data_lines(where, source, base_dir, spec.bounds, labels=False)[0]
            for message in eps_beyond_bounds(perturbation_budgets(check), spec.bounds, dim):
                lines.append(f"note: check {check.name!r}: {message}")
    except Exception as error:  # a summary never makes a valid spec fail validation
        lines.append(f"note: the summary stopped early: {type(error).__name__}: {error}")
    return lines


def _data_lines(
    where: str,
    data: DataSpec,
    base_dir: Path,
    bounds: tuple[float, float] | None,
    *,
    labels: bool,
) -> tuple[list[str], int | None]:
    """The summary lines of one data source, and the number of values per input if known."""
    if data.tensors is None:
        kind = next(key for key in ("factory", "image_folder", "torchvision") if getattr(data, key))
        value = data.torchvision.name if data.torchvision is not None else getattr(data, kind)
        return [f"{where}: {kind} {value} (its shapes are known only when the checks run)"], None
    path = base_dir / data.tensors
    try:
        x, y = _read(path)
    except Exception as error:  # validate reports; the run gives the full error
        return [f"{where}: {path} cannot be summarised: {type(error).__name__}: {error}"], None
    dtype, shape = _dtype_name(x), tuple(x.shape)
    text = f"{where}: x {dtype} {shape}"
    notes = []
    x_range = _range(x)
    if x_range is not None:
        text += f" in [{x_range[0]:g}, {x_range[1]:g}]"
        if bounds is not None and (x_range[0] < bounds[0] or x_range[1] > bounds[1]):
            notes.append(
                f"note: {where} x lies outside bounds [{bounds[0]:g}, {bounds[1]:g}]: the "
                "adversarial, fuzz, entropy_trend and noise (clip) checks will refuse it; set "
                "bounds to the raw input range, or move normalisation into model.preprocess"
            )
    if dtype == "float64":
        notes.append(f"note: {where} x is float64; it is converted to float32 when loaded")
    elif not dtype.startswith(("float", "bfloat")):
        notes.append(
            f"note: {where} x is {dtype}, not floating point: the checks will refuse it; "
            "save x as float in raw input space, e.g. x.float() / 255 for 8-bit images"
        )
    if y is not None:
        suffix, label_notes = _labels(where, y)
        text += f", y {_dtype_name(y)}{suffix}"
        notes += label_notes
    elif labels:
        notes.append(f"note: {where} has no y: the checks need labels")
    dim = int(np.prod(shape[1:])) if len(shape) >= 2 else None
    return [text, *notes], dim


def _labels(where: str, y: torch.Tensor) -> tuple[str, list[str]]:
    """The label range to show after y's dtype, and notes on labels that will not do."""
    if y.dim() != 1:
        return "", [f"note: {where} y has shape {tuple(y.shape)}; labels must be a vector (N,)"]
    if y.numel() == 0:
        return "", [f"note: {where} y is empty"]
    notes = []
    if y.is_floating_point():
        y = y.double()
        bad = ~torch.isfinite(y) | (y != y.round())
        if bool(bad.any()):
            example = float(y[bad][0])
            return "", [
                f"note: {where} y holds non-integer labels ({int(bad.sum()):,} of {len(y):,}, "
                f"e.g. {example:g}): the checks will refuse them; save integer class indices"
            ]
        notes.append(f"note: {where} y is {_dtype_name(y)}; its whole numbers are used as labels")
    elif y.dtype == torch.bool or y.is_complex():
        return "", [f"note: {where} y is {_dtype_name(y)}, not integer class labels"]
    low, high = int(y.min()), int(y.max())
    if low < 0 and not low == high == -1:
        notes.append(f"note: {where} y has negative labels (smallest {low}): not classes")
    return f" in [{low}, {high}]", notes


def _read(path: Path) -> tuple[Any, torch.Tensor | None]:
    """x (a tensor, or an .npz header when large) and y (read in full) of a tensors file."""
    if path.suffix == ".npz":
        x: Any = _NpyHeader(path, "x")
        with np.load(path, allow_pickle=False) as archive:
            y = torch.as_tensor(archive["y"]) if "y" in archive.files else None
            if x.size <= MAX_RANGE_VALUES:
                x = torch.as_tensor(archive["x"])
        return x, y
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        content = torch.load(path, map_location="cpu", weights_only=True)
    y = content.get("y")
    return torch.as_tensor(content["x"]), None if y is None else torch.as_tensor(y)


def _dtype_name(value: Any) -> str:
    return str(value.dtype).removeprefix("torch.")


class _NpyHeader:
    """dtype, shape and size of one array of a .npz archive, read from its header alone."""

    def __init__(self, path: Path, key: str) -> None:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            else:
                header = np.lib.format.read_array_header_2_0(stream)
        self.shape, self.dtype = tuple(header[0]), np.dtype(header[2])
        self.size = int(np.prod(self.shape))


def _range(x: Any) -> tuple[float, float] | None:
    """x's smallest and largest value (NaN ignored), unless x is large or not a real tensor."""
    if not isinstance(x, torch.Tensor) or x.numel() == 0 or x.numel() > MAX_RANGE_VALUES:
        return None
    if x.dtype == torch.bool or x.is_complex():
        return None
    finite = x[~torch.isnan(x)] if x.is_floating_point() else x
    if finite.numel() == 0:
        return None
    return float(finite.min()), float(finite.max())
