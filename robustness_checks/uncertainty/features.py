"""Read a layer's activations as per-example feature vectors with a forward hook (no torch.fx)."""

from __future__ import annotations

import difflib
import io
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from robustness_checks.errors import RobustnessError

LISTED_PATHS = 80
_TAP = "_robustness_checks_tap"
# TorchScript copies with a tap compiled in, per scripted network and (path, side).
_SCRIPT_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, str], nn.Module]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Tap:
    """Where features are read: a module of the user's network and which side of it."""

    network: nn.Module
    module: nn.Module
    path: str  # relative to the user's network
    side: Literal["input", "output"]

    @property
    def label(self) -> str:
        return f"input of {self.path}" if self.side == "input" else self.path


def unwrap(model: nn.Module) -> list[nn.Module]:
    """The wrappers (Counted, Normalized, SelectOutput) from `model` down to the user's network."""
    from robustness_checks.execution.context import Counted
    from robustness_checks.execution.contracts import SelectOutput
    from robustness_checks.loading.models import Normalized

    chain = [model]
    while True:
        current = chain[-1]
        if isinstance(current, Counted | SelectOutput):
            chain.append(current.model)
        elif isinstance(current, Normalized):
            chain.append(current.network)
        else:
            return chain


def is_script(module: nn.Module) -> bool:
    """Whether `module` is a TorchScript module (no Python hooks)."""
    return isinstance(module, torch.jit.ScriptModule)


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or getattr(module, "original_name", None) == "Linear"


def module_paths(network: nn.Module) -> list[str]:
    """'path (Class)' for every named module of `network`."""
    return [
        f"{name} ({getattr(module, 'original_name', type(module).__name__)})"
        for name, module in network.named_modules()
        if name
    ]


def _listing(network: nn.Module) -> str:
    paths = module_paths(network)
    shown = ", ".join(paths[:LISTED_PATHS])
    more = f", ... and {len(paths) - LISTED_PATHS} more" if len(paths) > LISTED_PATHS else ""
    return (shown + more) or "none (the network has no submodules)"


def last_linear(network: nn.Module) -> tuple[str, nn.Module]:
    """(path, module) of the last nn.Linear in registration order."""
    found = [(name, module) for name, module in network.named_modules() if _is_linear(module)]
    if not found:
        raise RobustnessError(
            "the model has no nn.Linear layer to read features from by default; name a module "
            f"with `features:` (module paths: {_listing(network)})"
        )
    return found[-1]


def resolve(model: nn.Module, path: str | None) -> Tap:
    """The tap for `path` (the input of the last nn.Linear when None) on the network `model` wraps.

    `path` is relative to the user's network (`layer4`) or to any wrapper around it
    (`network.layer4` under a spec's preprocess).
    """
    chain = unwrap(model)
    network = chain[-1]
    if path is None:
        name, module = last_linear(network)
        return Tap(network, module, name, "input")
    inside = {id(module): name for name, module in network.named_modules()}
    for level in reversed(chain):
        module = dict(level.named_modules()).get(path) if path else None
        if module is not None and id(module) in inside:
            return Tap(network, module, inside[id(module)] or path, "output")
    names = [name for name, _ in network.named_modules() if name]
    close = difflib.get_close_matches(path, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise RobustnessError(
        f"features: the model has no module {path!r}.{hint} Its module paths are: "
        f"{_listing(network)}"
    )


def pooled(value: object, label: str) -> Tensor:
    """A layer's output as (n, d) float32: 4-d and 5-d maps averaged over space, else flattened."""
    if isinstance(value, tuple | list) and value and isinstance(value[0], Tensor):
        value = value[0]
    if not isinstance(value, Tensor) or value.dim() < 1:
        raise RobustnessError(
            f"features: {label} produced {type(value).__name__}, not a tensor; name a module "
            "whose output is a tensor"
        )
    if value.dim() in (4, 5):
        value = value.mean(dim=tuple(range(2, value.dim())))
    return value.reshape(value.shape[0], -1).float()


@contextmanager
def reading(model: nn.Module, tap: Tap) -> Iterator[dict[str, Tensor]]:
    """While open, each forward pass of `model` leaves the tap's features in box['features']."""
    box: dict[str, Tensor] = {}
    if is_script(tap.network):
        with _script_reading(model, tap, box):
            yield box
        return

    def after(_: nn.Module, __: tuple, output: object) -> None:
        box["features"] = pooled(output, tap.label)

    def before(_: nn.Module, args: tuple) -> None:
        box["features"] = pooled(args[0], tap.label)

    if tap.side == "input":
        handle = tap.module.register_forward_pre_hook(before)
    else:
        handle = tap.module.register_forward_hook(after)
    try:
        yield box
    finally:
        handle.remove()


@contextmanager
def _script_reading(model: nn.Module, tap: Tap, box: dict[str, Tensor]) -> Iterator[None]:
    """TorchScript has no Python hooks: run a copy whose module keeps its tensor in an attribute."""
    chain = unwrap(model)
    if len(chain) < 2:
        raise RobustnessError("features of a TorchScript model need it wrapped (run it as a check)")
    parent = chain[-2]
    attribute = next(name for name, child in parent.named_children() if child is tap.network)
    copy, module = _tapped_copy(tap)

    class Reader(nn.Module):
        """Runs the tapped copy and moves its stored tensor into the box."""

        def __init__(self) -> None:
            super().__init__()
            self.copy = copy

        def forward(self, x: Tensor) -> object:
            output = self.copy(x)
            box["features"] = pooled(module._c.getattr(_TAP), tap.label)
            return output

    setattr(parent, attribute, Reader())
    try:
        yield
    finally:
        setattr(parent, attribute, tap.network)


def _tapped_copy(tap: Tap) -> tuple[nn.Module, nn.Module]:
    """A fresh copy of the scripted network whose tapped module saves its input or output."""
    copies = _SCRIPT_COPIES.setdefault(tap.network, {})
    key = (tap.path, tap.side)
    if key not in copies:
        buffer = io.BytesIO()
        tensors = (*tap.network.parameters(), *tap.network.buffers())
        device = tensors[0].device if tensors else torch.device("cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the user's model is TorchScript
            torch.jit.save(tap.network, buffer)
            buffer.seek(0)
            # A fresh load has fresh class types and executors, so the edit below takes effect.
            copy = torch.jit.load(buffer, map_location=device).eval()
        module = dict(copy.named_modules())[tap.path]
        kind = str(module._c._type())
        sharing = [
            n for n, m in copy.named_modules() if str(m._c._type()) == kind and n != tap.path
        ]
        if sharing:
            raise RobustnessError(
                f"features: in TorchScript, {tap.path!r} shares its compiled code with "
                f"{', '.join(sharing[:5])}; name a module whose class is used once (such as "
                "the last stage or the classifier), or give the Python nn.Module"
            )
        _insert_tap(module, tap.side)
        copies[key] = copy
    copy = copies[key]
    return copy, dict(copy.named_modules())[tap.path]


def _insert_tap(module: nn.Module, side: str) -> None:
    """Add `prim::SetAttr(self, value)` before the return of the module's forward graph."""
    module._c._register_attribute(_TAP, torch._C.TensorType.get(), torch.zeros(0))
    graph = module._c._get_method("forward").graph
    inputs = list(graph.inputs())
    value = inputs[1] if side == "input" else next(iter(graph.outputs()))
    if value.type().kind() != "TensorType":
        raise RobustnessError(
            f"features: the {side} of this TorchScript module is a {value.type()}, not a "
            "tensor; name a module that returns one tensor"
        )
    node = graph.create("prim::SetAttr", [inputs[0], value], 0)
    node.s_("name", _TAP)
    node.insertBefore(graph.return_node())


def linear_head(tap: Tap) -> tuple[Tensor, Tensor]:
    """(weight, bias) of the last nn.Linear, float64, for scores that re-apply it to features."""
    _, head = last_linear(tap.network)
    weight = head.weight.detach().double()
    bias = getattr(head, "bias", None)
    if bias is None:
        return weight, torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return weight, bias.detach().double()
