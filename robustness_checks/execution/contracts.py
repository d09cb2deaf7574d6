"""The model's input and output contract, checked once per check before it measures anything."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustness_checks.errors import LoadError, ModelOutputError


class SelectOutput(nn.Module):
    """Picks the logits out of a model that returns a dict, tuple or list (`model.output`)."""

    def __init__(self, model: nn.Module, key: str | int) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x)
        try:
            return output[self.key]
        except (KeyError, IndexError, TypeError):
            raise ModelOutputError(
                f"model.output is {self.key!r}, but the model returned {describe(output)}"
            ) from None


def describe(output: Any) -> str:
    """A short description of a model output for error messages."""
    if isinstance(output, torch.Tensor):
        return f"a {output.dtype} tensor of shape {tuple(output.shape)}"
    if isinstance(output, dict):
        return f"a dict with keys {', '.join(map(repr, output))}"
    if isinstance(output, tuple | list):
        return f"a {type(output).__name__} of {len(output)} items"
    return f"a {type(output).__name__}"


def as_logits(output: Any, rows: int) -> torch.Tensor:
    """`output` as float32 logits of shape (rows, classes >= 2), or a ModelOutputError saying what
    the model returned and what to set (no host sync: shapes and dtypes only)."""
    if isinstance(output, dict | tuple | list):
        choices = (
            ", ".join(repr(k) for k in output)
            if isinstance(output, dict)
            else f"0 to {len(output) - 1}"
        )
        raise ModelOutputError(
            f"the model returned {describe(output)}, not a logits tensor; set model.output to the "
            f"key or index of the logits ({choices})"
        )
    if not isinstance(output, torch.Tensor):
        raise ModelOutputError(f"the model returned {describe(output)}, not a logits tensor")
    if not output.is_floating_point():
        raise ModelOutputError(
            f"the model returned {describe(output)}; a classifier must return float logits "
            "(class indices cannot be attacked, calibrated or ranked)"
        )
    if output.dim() != 2 or output.shape[0] != rows:
        raise ModelOutputError(
            f"the model returned {describe(output)} for {rows} inputs; a classifier must return "
            f"logits of shape ({rows}, classes)"
        )
    if output.shape[1] < 2:
        raise ModelOutputError(
            f"the model returned {output.shape[1]} output per input; a classifier needs at least "
            "2 classes (for a binary model with one logit z, return torch.cat([-z, z], 1) / 2)"
        )
    return output if output.dtype == torch.float32 else output.float()


def input_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's parameters when it is not float32 (inputs are cast)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return None if tensor.dtype == torch.float32 else tensor.dtype
    return None


def first_call(run: Any, x: torch.Tensor) -> Any:
    """The model's first forward pass of a check: a shape or dtype error names the data's input
    shape and the fields that change it."""
    try:
        return run(x)
    except RuntimeError as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not any(word in text for word in ("shape", "size", "dtype", "Expected", "expected")):
            raise
        raise ModelOutputError(
            f"the model cannot run on the data's inputs of shape {tuple(x.shape[1:])} "
            f"({x.dtype}): {text}. Make the data match the model's input (data.resize / "
            "data.center_crop, a tensors file of shape (N, C, H, W)) or fold the model's input "
            "transform into model.preprocess"
        ) from error


def check_labels(y: torch.Tensor, classes: int) -> None:
    """Labels must be integers in [0, classes): a label outside would count as a wrong
    prediction and make calibration or ranking checks pass on data they did not understand."""
    if y.is_floating_point():
        raise LoadError(f"labels must be integers, got {y.dtype}; store y as int64")
    bad = (y < 0) | (y >= classes)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise LoadError(
            f"{int(bad.sum())} of {len(y)} labels are outside the model's classes 0 to "
            f"{classes - 1} (first at index {first}: {int(y[first])}); check the data's labels "
            "and the model's number of outputs"
        )
