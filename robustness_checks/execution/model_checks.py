"""Layers that still compute as in training after model.eval(): batch statistics and dropout.

Two looks, neither of them a forward pass of its own: `module_findings` reads the modules once
the check context has called .eval() (batch norm and dropout modules left in training mode, batch
norm without running statistics), and `watch_first_forward` watches the torch functions that the
check's own first forward pass calls (functional dropout or batch norm with training=True, random
draws) and the training flags that pass switches on. What they find becomes warnings of the check.
Evaluation counts, outputs, module state and random streams are left as they are.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.overrides import TorchFunctionMode

from robustness_checks.execution.contracts import SelectOutput
from robustness_checks.loading.models import Normalized

Kind = Literal["batch", "random", "mode"]
LISTED_MODULES = 5  # module paths named in one message; the rest are counted

_OVERRIDE = " (does its class or a parent's override train() or eval()?)"
_FIX_EVAL = (
    "Let model.eval() reach every module: an overridden train(mode) must call super().train(mode)"
)
_BATCH_EFFECT = (
    "so results change with batch_size and with which examples share a batch (and the "
    "running statistics change at every forward pass)"
)
# (kind, state, consequence) of each finding about modules.
_REASONS: dict[str, tuple[Kind, str, str]] = {
    "batch_norm_training": (
        "batch",
        f"{{be}} still in training mode after model.eval(){_OVERRIDE}",
        f"batch normalisation there uses each batch's own statistics, {_BATCH_EFFECT}. "
        + _FIX_EVAL,
    ),
    "batch_norm_no_statistics": (
        "batch",
        "{have} no running statistics (track_running_stats=False)",
        "even in eval mode, batch normalisation there uses each batch's own statistics, so "
        "results change with batch_size and with which examples share a batch. Build it with "
        "track_running_stats=True and train it, or use a normalisation that does not depend on "
        "the batch (GroupNorm, LayerNorm)",
    ),
    "instance_norm_training": (
        "mode",
        f"{{be}} still in training mode after model.eval(){_OVERRIDE}",
        "instance normalisation there uses each input's own statistics instead of the running "
        "statistics it keeps (and updates them at every forward pass), so results differ from "
        "the model's eval-mode outputs. " + _FIX_EVAL,
    ),
    "dropout_training": (
        "random",
        f"{{be}} still in training mode after model.eval(){_OVERRIDE}",
        "dropout there zeroes random activations at every forward pass, so the model is "
        "random and checks treat it as such (results repeat under the same seed). " + _FIX_EVAL,
    ),
    "custom_training": (
        "mode",
        f"{{be}} still in training mode after model.eval(){_OVERRIDE}",
        "whatever it computes differently in training (batch statistics, dropout, noise) it "
        "still does, so results can change with batch_size or from run to run. " + _FIX_EVAL,
    ),
}


@dataclass(frozen=True)
class Finding:
    """A warning about the model, and what it explains: batch dependence, randomness or mode."""

    kind: Kind
    message: str


def check_models(model: nn.Module, ensemble: Sequence[nn.Module], warnings: list[str]) -> None:
    """Add to `warnings` what the modules of the model and ensemble members (each a context's
    counting wrapper, with the eval-mode module as `.model`) show now, and, when it runs, what
    their first forward pass shows."""
    members = [(f"ensemble member {i}", m) for i, m in enumerate(ensemble, start=1)]
    for owner, module in [("the model", model), *members]:
        network = user_network(module.model)
        findings = module_findings(network, owner)
        warnings.extend(finding.message for finding in findings)
        explained = {finding.kind for finding in findings}
        watch_first_forward(module, network, owner, explained, warnings)


def user_network(model: nn.Module) -> nn.Module:
    """The user's network inside the spec's wrappers (Normalized, SelectOutput), so that module
    paths are the user's own."""
    while True:
        if isinstance(model, SelectOutput):
            model = model.model
        elif isinstance(model, Normalized):
            model = model.network
        else:
            return model


def module_findings(network: nn.Module, owner: str = "the model") -> list[Finding]:
    """Batch norm, instance norm, dropout and custom modules that still compute as in training
    after .eval(), one finding per reason."""
    found: dict[str, list[tuple[str, nn.Module]]] = {}
    stuck = {path for path, module in network.named_modules() if module.training}
    for path, module in network.named_modules():
        reason = _reason(module, path, stuck)
        if reason is not None:
            found.setdefault(reason, []).append((path, module))
    findings = []
    for reason, modules in found.items():
        kind, state, consequence = _REASONS[reason]
        one = len(modules) == 1
        state = state.format(be="is" if one else "are", have="has" if one else "have")
        findings.append(Finding(kind, f"{_named(owner, modules)} {state}: {consequence}"))
    return findings


def _reason(module: nn.Module, path: str, changed: set[str]) -> str | None:
    """Why `module` computes as in training after .eval(), as a key of _REASONS, or None.
    `changed`: the paths of the modules in training mode (or switched to it)."""
    if isinstance(module, _BatchNorm):
        if module.training:
            return "batch_norm_training"
        if module.running_mean is None and module.running_var is None:
            return "batch_norm_no_statistics"
        return None
    if isinstance(module, _InstanceNorm):
        tracks = module.track_running_stats
        return "instance_norm_training" if module.training and tracks else None
    if isinstance(module, _DropoutNd):
        return "dropout_training" if module.training and module.p > 0 else None
    # Other modules: only those of the user's own classes, and only the outermost one of a
    # subtree in training mode, so that one overridden train() gives one name.
    parent = path.rpartition(".")[0]
    own_class = not type(module).__module__.startswith("torch.")
    if module.training and own_class and (not path or parent not in changed):
        return "custom_training"
    return None


def _named(owner: str, modules: list[tuple[str, nn.Module]]) -> str:
    """The modules as a subject, naming at most LISTED_MODULES: the model's module 'bn'
    (BatchNorm1d); the model itself (Net) and its modules 'a' (X), 'b' (Y) and 3 more."""
    root = [f"{owner} itself ({type(m).__name__})" for path, m in modules if not path]
    inner = [f"'{path}' ({type(m).__name__})" for path, m in modules if path]
    parts = []
    if inner:
        more = len(inner) - LISTED_MODULES
        listed = ", ".join(inner[:LISTED_MODULES]) + (f" and {more} more" if more > 0 else "")
        noun = "module" if len(inner) == 1 else "modules"
        parts.append(f"its {noun} {listed}" if root else f"{owner}'s {noun} {listed}")
    return " and ".join(root + parts)


def watch_first_forward(
    model: nn.Module,
    network: nn.Module,
    owner: str,
    explained: set[Kind],
    warnings: list[str],
) -> None:
    """Watch the next forward pass of `model` (the check's first): what it does as in training
    that `explained` (kinds of findings already reported) does not cover goes to `warnings`.

    The watch replaces `model.forward` on the instance for one call; it adds no forward pass.
    """
    forward = model.forward

    def first(*args: Any, **kwargs: Any) -> Any:
        del model.forward  # back to the class's forward: later passes are not watched
        before = {path: module.training for path, module in network.named_modules()}
        sampling = any(isinstance(m, _DropoutNd) and m.training for m in network.modules())
        with _CallWatch() as calls:
            output = forward(*args, **kwargs)
        changed = {p for p, m in network.named_modules() if m.training and not before.get(p, True)}
        switched = [
            (path, module)
            for path, module in network.named_modules()
            if path in changed and _reason(module, path, changed) is not None
        ]
        warnings.extend(_behaviour_messages(owner, calls.seen, switched, explained, sampling))
        return output

    model.forward = first


def _behaviour_messages(
    owner: str,
    seen: dict[str, str],
    switched: list[tuple[str, nn.Module]],
    explained: set[Kind],
    sampling: bool,
) -> list[str]:
    """The warnings for what one forward pass did: `seen` maps 'dropout', 'batch_norm' and
    'draw' to the first call of each; `switched` lists the modules it put in training mode;
    `sampling`: dropout modules were in training mode already (MC dropout, or reported)."""
    messages = []
    if switched:
        messages.append(
            f"{owner}'s forward pass switched {_named(owner, switched)} into training mode "
            "(does forward call self.train()?): from then on batch normalisation uses each "
            "batch's own statistics and dropout is random, so results change with batch_size and "
            "from run to run. Remove that call: checks put the model in eval mode themselves"
        )
    if "dropout" in seen and not (switched or sampling or "random" in explained):
        messages.append(
            f"{owner}'s forward pass calls {seen['dropout']} although the model is in eval "
            "mode, so it zeroes random activations at every call: the model is random and checks "
            "treat it as such. If that is not meant, pass training=self.training "
            "(F.dropout(x, p, training=self.training)), or use an nn.Dropout module, which "
            "model.eval() switches off"
        )
    if "batch_norm" in seen and not (switched or "batch" in explained):
        messages.append(
            f"{owner}'s forward pass calls {seen['batch_norm']} although the model is in eval "
            "mode, so it normalises every batch with that batch's own statistics and results "
            "change with batch_size and with which examples share a batch. Pass running "
            "statistics and training=self.training, or use nn.BatchNorm with "
            "track_running_stats=True"
        )
    if "draw" in seen:
        messages.append(
            f"{owner}'s forward pass draws random numbers ({seen['draw']}) although the model "
            "is in eval mode, so its outputs change from call to call: the model is random and "
            "checks treat it as such. If that is not meant, draw only in training "
            "(if self.training: ...)"
        )
    return messages


# Functional dropout and batch norm: the keyword that says whether they act as in training.
_FUNCTIONAL: dict[Callable[..., Any], tuple[str, str]] = {
    F.dropout: ("dropout", "training"),
    F.dropout1d: ("dropout", "training"),
    F.dropout2d: ("dropout", "training"),
    F.dropout3d: ("dropout", "training"),
    F.alpha_dropout: ("dropout", "training"),
    F.feature_alpha_dropout: ("dropout", "training"),
    F.batch_norm: ("batch_norm", "training"),
}
# The same in torch's namespace, with positional arguments: (what, index of the flag).
_BUILTINS: dict[Callable[..., Any], tuple[str, int]] = {
    torch.dropout: ("dropout", 2),
    torch.feature_dropout: ("dropout", 2),
    torch.alpha_dropout: ("dropout", 2),
    torch.feature_alpha_dropout: ("dropout", 2),
    torch.batch_norm: ("batch_norm", 5),
}
_RANDOM = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "rand_like",
        "randn_like",
        "randint_like",
        "randperm",
        "bernoulli",
        "bernoulli_",
        "multinomial",
        "normal",
        "normal_",
        "uniform_",
        "random_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "cauchy_",
        "poisson",
    }
)


class _CallWatch(TorchFunctionMode):
    """Notes the first training-mode dropout, training-mode batch norm and random draw among the
    torch functions called in its block."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, str] = {}

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        note = _note(func, args, kwargs)
        if note is not None:
            self.seen.setdefault(*note)
        return func(*args, **kwargs)


def _note(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, str] | None:
    """('dropout' | 'batch_norm' | 'draw', how it was called) for a call that acts as in
    training, else None."""
    try:
        if func in _FUNCTIONAL:
            what, flag = _FUNCTIONAL[func]
            bound = _signature(func).bind(*args, **kwargs)
            bound.apply_defaults()
            if not bound.arguments[flag] or bound.arguments.get("p", 1) == 0:
                return None
            p = f"p={bound.arguments['p']}, " if "p" in bound.arguments else ""
            return what, f"torch.nn.functional.{func.__name__}(..., {p}{flag}=True)"
        if func in _BUILTINS:
            what, index = _BUILTINS[func]
            flag = args[index] if len(args) > index else kwargs.get("train", kwargs.get("training"))
            word = "train" if what == "dropout" else "training"
            return (what, f"torch.{func.__name__}(..., {word}=True)") if flag else None
    except (TypeError, KeyError):  # unhashable callables, arguments that do not bind
        return None
    name = getattr(func, "__name__", "")
    if name in _RANDOM:
        return "draw", f"torch.{name}" if not name.endswith("_") else f"Tensor.{name}"
    return None


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)
