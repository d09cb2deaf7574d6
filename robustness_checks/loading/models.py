"""Build the model under test (and ensemble members) from a spec, in eval mode, raw input space."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from robustness_checks.errors import LoadError
from robustness_checks.loading.architectures import timm_model, torchvision_model
from robustness_checks.loading.factory import import_callable
from robustness_checks.loading.safetensors_files import is_safetensors, read_safetensors
from robustness_checks.spec.schema import ModelSource, ModelSpec, Preprocess


class Normalized(nn.Module):
    """Applies (x - mean) / std per channel (dimension 1) before the wrapped network."""

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return self.network((x - self.mean.view(shape)) / self.std.view(shape))


def build_model(spec: ModelSpec, base_dir: Path) -> nn.Module:
    """The model of `spec` with its preprocessing folded in and its `output` selected, in eval
    mode, on the CPU."""
    return _finish(_select(build_network(spec, base_dir), spec.output), spec.preprocess)


def build_ensemble(spec: ModelSpec, base_dir: Path) -> list[nn.Module]:
    """The ensemble members of `spec` (none without `ensemble`), each with its preprocessing."""
    return [
        _finish(_select(build_network(member, base_dir), spec.output), spec.preprocess)
        for member in spec.ensemble or []
    ]


def _select(network: nn.Module, output: str | int | None) -> nn.Module:
    from robustness_checks.execution.contracts import SelectOutput

    return network if output is None else SelectOutput(network, output)


def build_network(source: ModelSource, base_dir: Path) -> nn.Module:
    """The bare network a source describes, with its weights loaded."""
    if source.torchscript is not None:
        path = base_dir / source.torchscript
        if not path.is_file():
            raise LoadError(f"cannot load TorchScript file {path}: it does not exist")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # RuntimeError for a truncated or corrupt archive
            raise LoadError(
                f"cannot load TorchScript file {path}: it is truncated or not a TorchScript "
                f"file ({size_text(path)}; torch.jit.load: {first_line(error)}). Save it again "
                "with torch.jit.save(torch.jit.script(model), path), or copy it again in full"
            ) from error
    if source.factory is not None:
        factory = import_callable(source.factory, base_dir)
        try:
            network = factory(**source.kwargs)
        except Exception as error:
            raise LoadError(f"model factory {source.factory!r} raised {error!r}") from error
        if not isinstance(network, nn.Module):
            raise LoadError(
                f"model factory {source.factory!r} returned a {type(network).__name__}; "
                "it must return a torch.nn.Module"
            )
    elif source.timm is not None:
        network = timm_model(source.timm, source.kwargs)
    else:
        network = torchvision_model(str(source.torchvision), source.kwargs)
    if source.weights is not None:
        _load_weights(network, base_dir / source.weights)
    return network


def load_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """A state_dict read with torch.load(weights_only=True); refuses pickles that run code."""
    if not path.is_file():
        raise LoadError(f"weights file {path} does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported operand" in str(error):  # the bytes are not a pickle at all
            raise LoadError(broken_file_message(path, "its bytes are not a pickle")) from error
        raise LoadError(
            f"weights file {path} holds objects that torch.load(weights_only=True) refuses "
            "(a pickle that could run code). Save a plain state_dict instead: "
            "torch.save(model.state_dict(), path)"
        ) from error
    except Exception as error:  # RuntimeError, EOFError, KeyError... for corrupt files
        raise LoadError(broken_file_message(path, f"torch.load: {first_line(error)}")) from error
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in loaded and isinstance(loaded[key], Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    ):
        raise LoadError(f"weights file {path} does not hold a state_dict (a mapping of tensors)")
    return loaded


def broken_file_message(path: Path, reason: str) -> str:
    """Why a weights file that torch.load rejects is unusable, and what to do."""
    return (
        f"weights file {path} is truncated or not a torch file ({size_text(path)}; "
        f"{reason}). Save it again with torch.save(model.state_dict(), path), or copy or "
        "download it again in full"
    )


def size_text(path: Path) -> str:
    try:
        return f"{path.stat().st_size:,} bytes"
    except OSError:
        return "unreadable"


def first_line(error: BaseException) -> str:
    """The error's type and first sentence (torch's messages go on for a paragraph)."""
    text = str(error).strip().split("\n")[0].split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _load_weights(network: nn.Module, path: Path) -> None:
    """The state_dict of a torch file (weights_only) or a safetensors file into `network`."""
    if is_safetensors(path):
        _load_safetensors(network, path)
        return
    state = load_state_dict(path)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise LoadError(f"weights file {path} does not fit the model: {error}") from error


def _load_safetensors(network: nn.Module, path: Path) -> None:
    """Like load_state_dict, except that a tensor the network shares between names (tied
    weights, which safetensors.torch.save_model stores once) may be missing under its other
    names."""
    state = read_safetensors(path)
    try:
        missing, unexpected = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # size mismatches are raised even when not strict
        raise LoadError(f"weights file {path} does not fit the model: {error}") from error
    own = network.state_dict(keep_vars=True)
    loaded = {own[key].data_ptr() for key in state if key in own} - {0}  # 0: empty tensors
    missing = [key for key in missing if own[key].data_ptr() not in loaded]
    problems = [
        f"{what} key(s) in state_dict: {', '.join(map(repr, keys))}"
        for what, keys in (("Missing", missing), ("Unexpected", unexpected))
        if keys
    ]
    if problems:
        raise LoadError(f"weights file {path} does not fit the model: {'. '.join(problems)}")


def _finish(network: nn.Module, preprocess: Preprocess | None) -> nn.Module:
    model = network if preprocess is None else Normalized(network, preprocess.mean, preprocess.std)
    model.eval()
    for parameter in model.parameters():  # ScriptModules have no requires_grad_()
        parameter.requires_grad_(False)
    return model
