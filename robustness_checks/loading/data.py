"""Build a spec's labelled examples from tensors files, factories, torchvision or image folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from robustness_checks.errors import LoadError
from robustness_checks.examples import Examples, as_examples
from robustness_checks.execution.contracts import BOOL_LABELS
from robustness_checks.loading.factory import import_callable
from robustness_checks.loading.images import image_folder_dataset, same_size_loader, size_message
from robustness_checks.loading.streamed import (
    SizeError,
    StreamedInputs,
    dataset_labels,
    should_stream,
)
from robustness_checks.spec.schema import DataSpec


def build_data(spec: DataSpec, base_dir: Path, *, labels: bool = True) -> Examples:
    """The examples `spec` describes, limited to its `limit`, with its batch size.

    With `labels=False` (OOD data) a tensors file may lack y; the labels are then -1.
    """
    if spec.tensors is not None:
        x, y = read_tensors_file(base_dir / spec.tensors, labels=labels)
        return as_examples((x, y), spec.batch_size, spec.limit)
    if spec.factory is not None:
        factory = import_callable(spec.factory, base_dir)
        try:
            data = factory(**spec.kwargs)
        except Exception as error:
            raise LoadError(f"data factory {spec.factory!r} raised {error!r}") from error
        if isinstance(data, Dataset) and not isinstance(data, tuple | list):
            streamed = streamed_examples(data, spec)
            if streamed is not None:
                return streamed
        return as_examples(data, spec.batch_size, spec.limit)
    transform = _image_transform(spec)
    if spec.torchvision is not None:
        dataset = _torchvision_dataset(spec, base_dir, transform)
        where = f"torchvision data set {spec.torchvision.name}"

        def name(index: int) -> str:
            return f"item {index}"
    else:
        root = base_dir / str(spec.image_folder)
        dataset = image_folder_dataset(root, transform)
        where = f"image folder {root}"

        def name(index: int) -> str:
            return os.path.relpath(dataset.samples[index][0], root)

    def size_error(one: int, shape: tuple[int, ...], two: int, other: tuple[int, ...]) -> str:
        return size_message(spec, where, (name(one), shape), (name(two), other))

    streamed = streamed_examples(dataset, spec, size_error)
    if streamed is not None:
        return streamed
    loader = same_size_loader(dataset, spec, name, where)
    return as_examples(loader, spec.batch_size, spec.limit)


def streamed_examples(
    dataset: Dataset[Any], spec: DataSpec, size_error: SizeError | None = None
) -> Examples | None:
    """The data set's examples with streamed inputs, when `spec.stream` asks for it (or, for
    `auto`, when they would not fit comfortably in memory); None to load them whole."""
    if spec.stream is False:
        return None
    try:
        count = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return None  # an iterable data set: read whole
    count = count if spec.limit is None else min(count, spec.limit)
    if count == 0:
        raise LoadError("the data set is empty")
    first = dataset[0][0]
    shape = tuple(torch.as_tensor(first).shape) if not hasattr(first, "shape") else first.shape
    item_shape = tuple(int(n) for n in shape)
    if not should_stream(spec.stream, count, item_shape):
        return None
    inputs = StreamedInputs(dataset, count, item_shape, size_error)
    return Examples(inputs, dataset_labels(dataset, count), spec.batch_size)


def read_tensors_file(path: Path, *, labels: bool = True) -> tuple[Any, Any]:
    """(x, y) from a .pt file holding a dict or a .npz archive; never unpickles code."""
    if not path.is_file():
        raise LoadError(f"data file {path} does not exist")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                content = {key: archive[key] for key in archive.files}
        except (ValueError, OSError) as error:
            raise LoadError(f"cannot read {path} as .npz without pickle: {error}") from error
    else:
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise LoadError(
                f"cannot read {path} with torch.load(weights_only=True): {error}"
            ) from error
    if not isinstance(content, dict):
        raise LoadError(f"data file {path} must hold a mapping with keys x and y")
    if not labels and "x" in content and ("y" not in content or _is_bool(content["y"])):
        # Labels that are not used (OOD data) need not be classes.
        return content["x"], np.full(len(content["x"]), -1, dtype=np.int64)
    missing = [key for key in ("x", "y") if key not in content]
    if missing:
        raise LoadError(
            f"data file {path} has no {' or '.join(missing)} (found keys: "
            f"{', '.join(map(str, content)) or 'none'}); save x (inputs) and y (labels)"
        )
    if _is_bool(content["y"]):
        raise LoadError(f"data file {path}: {BOOL_LABELS}")
    return content["x"], content["y"]


def _is_bool(values: Any) -> bool:
    """Whether `values` is a torch tensor or numpy array of booleans."""
    dtype = getattr(values, "dtype", None)
    return dtype == torch.bool or (isinstance(dtype, np.dtype) and dtype == np.bool_)


def tensors_file_keys(path: Path) -> list[str]:
    """The keys of a .pt/.npz data file, read without loading the arrays where possible."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        content = torch.load(path, map_location="cpu", weights_only=True)
    return list(content) if isinstance(content, dict) else []


def _image_transform(spec: DataSpec) -> Any:
    from torchvision.transforms import v2

    steps: list[Any] = [v2.ToImage()]
    if spec.resize is not None:
        steps.append(v2.Resize(spec.resize, antialias=True))
    if spec.center_crop is not None:
        steps.append(v2.CenterCrop(spec.center_crop))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


def _torchvision_dataset(spec: DataSpec, base_dir: Path, transform: Any) -> Any:
    import torchvision

    options = spec.torchvision
    assert options is not None
    dataset_class = getattr(torchvision.datasets, options.name, None)
    if dataset_class is None:
        raise LoadError(f"torchvision.datasets has no data set named {options.name!r}")
    root = (base_dir / Path(options.root).expanduser()).resolve()
    kwargs = dict(options.kwargs)
    if "split" not in kwargs:
        kwargs["train"] = options.train
    try:
        return dataset_class(str(root), download=False, transform=transform, **kwargs)
    except (RuntimeError, FileNotFoundError) as error:
        raise LoadError(
            f"torchvision data set {options.name} was not found under {root} ({error}). "
            "Nothing is downloaded at run time: download it once yourself, then point root at it"
        ) from error
    except TypeError as error:
        raise LoadError(
            f"torchvision data set {options.name} does not accept these options ({error}); "
            "give its own arguments (for example split) in torchvision.kwargs"
        ) from error
