"""The model's input and output contract, checked once per check before it measures anything."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robustness_checks.errors import LoadError, ModelOutputError

BOOL_LABELS = (
    "the labels (y) are booleans (torch.bool), not class indices; they would silently count as "
    "classes 0 (False) and 1 (True). Store y as int64 class indices (y.long() if False and True "
    "really are classes 0 and 1)"
)


class SelectOutput(nn.Module):
    """Picks the logits out of a model that returns a dict, tuple, list or an object with
    attributes (`model.output`: a key, an index or an attribute name)."""

    def __init__(self, model: nn.Module, key: str | int) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x)
        if isinstance(output, torch.Tensor):  # already the logits (an ensemble member, say)
            return output
        try:
            selected = select(output, self.key)
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ModelOutputError(
                f"model.output is {self.key!r}, but the model returned {describe(output)}"
                f"{_offer(output, 'set model.output to one of them instead')}"
            ) from None
        logits = read_logits(selected)
        if not isinstance(logits, torch.Tensor):
            raise ModelOutputError(
                f"model.output is {self.key!r}, which holds {describe(selected)}, not a logits "
                f"tensor; the model returned {describe(output)}"
                f"{_offer(output, 'set model.output to the one that holds the logits')}"
            )
        return logits


def select(output: Any, key: str | int) -> Any:
    """The item `key` of a mapping, tuple or list, else the attribute `key` of an object (a name
    may be either: a Hugging Face ModelOutput is a dict whose keys are attributes too)."""
    if isinstance(output, Mapping):
        if key in output:
            return output[key]
        if isinstance(key, str) and isinstance(getattr(output, key, None), torch.Tensor):
            return getattr(output, key)
    elif isinstance(key, str) and hasattr(output, key):
        return getattr(output, key)
    # An index of a tuple or list, or the object's own __getitem__ (a Hugging Face ModelOutput
    # takes the index of a field among those that are not None).
    return output[key]


def describe(output: Any) -> str:
    """A short description of a model output for error messages."""
    if isinstance(output, torch.Tensor):
        return f"a {output.dtype} tensor of shape {tuple(output.shape)}"
    name = type(output).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    if isinstance(output, Mapping):
        return f"{article} {name} with keys {', '.join(map(repr, output))}"
    if isinstance(output, tuple | list):
        return f"a {name} of {len(output)} items"
    return f"{article} {name} object"


def offers(output: Any) -> tuple[str, list[str | int]]:
    """What `output` holds tensors under: ('key', keys), ('index', indices) or ('attribute',
    names); every key or index when none holds a tensor."""
    if isinstance(output, Mapping):
        keys = list(output)
        return "key", [k for k in keys if isinstance(output[k], torch.Tensor)] or keys
    if isinstance(output, tuple | list):
        indices = list(range(len(output)))
        return "index", [i for i in indices if isinstance(output[i], torch.Tensor)] or indices
    return "attribute", [
        name
        for name in _attribute_names(output)
        if not name.startswith("_") and isinstance(getattr(output, name, None), torch.Tensor)
    ]


def _attribute_names(output: Any) -> list[str]:
    """The fields of a dataclass, else the instance attributes and slots of an object."""
    if dataclasses.is_dataclass(output):
        return [field.name for field in dataclasses.fields(output)]
    names = list(getattr(output, "__dict__", {}))
    for cls in type(output).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    return list(dict.fromkeys(names))


def _offer(output: Any, action: str) -> str:
    """The end of a message: where `output` holds tensors, then `action` or a wrapper."""
    kind, choices = offers(output)
    if not choices:
        return (
            "; it holds no tensor to read logits from: make the model's forward return the "
            "logits tensor"
        )
    where = {"key": "under the keys", "index": "at the indices", "attribute": "in the attributes"}
    listed = _listed(choices)
    first = choices[0]
    example = f"model(x).{first}" if kind == "attribute" else f"model(x)[{first!r}]"
    return (
        f"; it holds tensors {where[kind]} ({listed}): {action}, or from Python pass a model whose "
        f"forward returns the logits (wrap it in an nn.Module whose forward returns {example})"
    )


def _listed(choices: list[str | int]) -> str:
    """'a', 'b' for names and keys; 0 to 2 for consecutive indices from 0."""
    if all(isinstance(c, int) for c in choices) and choices == list(range(len(choices))):
        return f"0 to {len(choices) - 1}" if len(choices) > 1 else "0"
    return ", ".join(map(repr, choices))


def read_logits(output: Any) -> Any:
    """The logits inside a model's output: a tensor as it is, else the tensor attribute `logits`
    of an object (a Hugging Face ModelOutput, a dataclass, a named tuple) or the tensor under the
    key 'logits' of a mapping (a dict, a TorchScript model's Dict[str, Tensor]); else `output`
    unchanged."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if not isinstance(logits, torch.Tensor) and isinstance(output, Mapping):
        logits = output.get("logits")
    return logits if isinstance(logits, torch.Tensor) else output


def as_logits(output: Any, rows: int) -> torch.Tensor:
    """`output` as float32 logits of shape (rows, classes >= 2), or a ModelOutputError saying what
    the model returned and what to set (no host sync: shapes and dtypes only). An object with a
    tensor attribute `logits`, or a mapping with a tensor under 'logits', gives that tensor."""
    output = read_logits(output)
    if not isinstance(output, torch.Tensor):
        kind = offers(output)[0]
        raise ModelOutputError(
            f"the model returned {describe(output)}, not a logits tensor"
            f"{_offer(output, f'set model.output to the {kind} that holds the logits')}"
        )
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
    if y.dtype == torch.bool:
        raise LoadError(BOOL_LABELS)
    bad = (y < 0) | (y >= classes)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise LoadError(
            f"{int(bad.sum())} of {len(y)} labels are outside the model's classes 0 to "
            f"{classes - 1} (first at index {first}: {int(y[first])}); check the data's labels "
            "and the model's number of outputs"
        )
