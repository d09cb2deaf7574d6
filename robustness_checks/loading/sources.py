"""Collection-time checks that the files and factories a spec names exist, without running them."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from robustness_checks.errors import LoadError
from robustness_checks.loading.architectures import (
    timm_kwargs_problems,
    timm_name_problem,
    torchvision_name_problem,
)
from robustness_checks.loading.data import tensors_file_keys
from robustness_checks.loading.factory import import_callable
from robustness_checks.loading.safetensors_files import (
    broken_message,
    header_problem,
    is_safetensors,
)
from robustness_checks.spec.schema import DataSpec, ModelSource, Spec
from robustness_checks.spec.yaml_lines import Location

Problem = tuple[Location, str]


def source_problems(spec: Spec, base_dir: Path) -> list[Problem]:
    """Every missing file, unimportable factory or malformed data file the spec refers to."""
    problems = _model_problems(spec.model, base_dir, ("model",))
    for index, member in enumerate(spec.model.ensemble or []):
        problems += _model_problems(member, base_dir, ("model", "ensemble", index))
    problems += _data_problems(spec.data, base_dir, ("data",))
    for index, check in enumerate(spec.checks):
        for name in type(check).model_fields:
            source = getattr(check, name)
            if isinstance(source, DataSpec):
                problems += _data_problems(source, base_dir, ("checks", index, name), labels=False)
            elif name == "ood_data" and source is None:
                problems.append(
                    (
                        ("checks", index, "ood_data"),
                        "an ood check needs ood_data: the out-of-distribution inputs, "
                        "in the same forms as data (tensors, factory, ...)",
                    )
                )
    return problems


def _model_problems(source: ModelSource, base_dir: Path, where: Location) -> list[Problem]:
    problems: list[Problem] = []
    if source.factory is not None:
        problems += _factory_problems(source.factory, base_dir, (*where, "factory"))
    if source.torchscript is not None:
        problems += _torch_file_problems(
            base_dir / source.torchscript, (*where, "torchscript"), "TorchScript file"
        )
    if source.torchvision is not None:
        problem = torchvision_name_problem(source.torchvision)
        if problem is not None:
            problems.append(((*where, "torchvision"), problem))
    if source.timm is not None:
        problems += _timm_problems(source.timm, source.kwargs, where)
    if source.weights is not None:
        path = base_dir / source.weights
        if is_safetensors(path):
            problems += _safetensors_problems(path, (*where, "weights"))
        else:
            problems += _torch_file_problems(path, (*where, "weights"), "weights file")
    return problems


def _timm_problems(name: str, kwargs: dict[str, Any], where: Location) -> list[Problem]:
    """An unknown timm name (with close names), options that would fetch pretrained weights, or
    timm not installed."""
    try:
        problem = timm_name_problem(name)
    except LoadError as error:  # timm is not installed
        return [((*where, "timm"), str(error))]
    problems = [((*where, "timm"), problem)] if problem is not None else []
    refused = timm_kwargs_problems(kwargs)
    return problems + [((*where, "kwargs", key), text) for key, text in refused]


def _safetensors_problems(path: Path, where: Location) -> list[Problem]:
    """A missing safetensors file, or one whose header does not describe it (a truncated file,
    another format): reads the header only."""
    missing = _file_problems(path, where, "weights file")
    if missing:
        return missing
    try:
        problem = header_problem(path)
        return [] if problem is None else [(where, broken_message(path, problem))]
    except OSError as error:
        return [(where, f"weights file {path} cannot be read: {error}")]


def _data_problems(
    data: DataSpec, base_dir: Path, where: Location, *, labels: bool = True
) -> list[Problem]:
    if data.factory is not None:
        return _factory_problems(data.factory, base_dir, (*where, "factory"))
    if data.image_folder is not None:
        folder = base_dir / data.image_folder
        if not folder.is_dir():
            return [((*where, "image_folder"), f"image folder {folder} does not exist")]
    if data.torchvision is not None:
        import torchvision

        if not hasattr(torchvision.datasets, data.torchvision.name):
            return [
                (
                    (*where, "torchvision", "name"),
                    f"torchvision.datasets has no data set named {data.torchvision.name!r}",
                )
            ]
    if data.tensors is None:
        return []
    path = base_dir / data.tensors
    missing = _file_problems(path, (*where, "tensors"), "data file")
    if missing:
        return missing
    try:
        keys = tensors_file_keys(path)
    except Exception as error:
        return [((*where, "tensors"), f"cannot read data file {path} safely: {error}")]
    absent = [key for key in (("x", "y") if labels else ("x",)) if key not in keys]
    if absent:
        return [
            (
                (*where, "tensors"),
                f"data file {path} has no {' or '.join(absent)} (found keys: "
                f"{', '.join(keys) or 'none'}); it must hold x (float inputs) and y (labels)",
            )
        ]
    return []


def _factory_problems(reference: str, base_dir: Path, where: Location) -> list[Problem]:
    try:
        import_callable(reference, base_dir)
    except LoadError as error:
        return [(where, str(error))]
    return []


def _torch_file_problems(path: Path, where: Location, what: str) -> list[Problem]:
    """A missing file, or one that is neither a complete zip archive (torch.save, torch.jit.save)
    nor a pickle (torch.save's legacy format; not for TorchScript). Reads only the file's first
    byte and its end, so a truncated or foreign file fails its spec's collection cheaply."""
    missing = _file_problems(path, where, what)
    if missing:
        return missing
    torchscript = what == "TorchScript file"
    try:
        with path.open("rb") as stream:
            pickled = stream.read(1) == b"\x80" and not torchscript
        if pickled or zipfile.is_zipfile(path):
            return []
        size = path.stat().st_size
    except OSError as error:
        return [(where, f"{what} {path} cannot be read: {error}")]
    if torchscript:
        expected, save = "a complete zip archive", "torch.jit.save(torch.jit.script(model), path)"
    else:
        expected, save = "a complete zip archive or pickle", "torch.save(model.state_dict(), path)"
    return [
        (
            where,
            f"{what} {path} is truncated or not a torch file ({size:,} bytes, not {expected}). "
            f"Save it again with {save}, or copy or download it again in full",
        )
    ]


def _file_problems(path: Path, where: Location, what: str) -> list[Problem]:
    if path.is_file():
        return []
    return [(where, f"{what} {path} does not exist (paths are relative to the spec file)")]
