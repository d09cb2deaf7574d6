"""`CheckType`: the one record per check type that YAML, Python, reports and gating all read."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from robustness_checks.execution.context import CheckContext
    from robustness_checks.results import CheckResult
    from robustness_checks.spec.schema import CheckSpec

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class CheckType:
    """Everything the rest of the system needs to know about one check `type`.

    name: the `type` of spec entries and the name of the Python API function.
    params: the pydantic model of the check's fields (a `CheckSpec` subclass).
    run: runs the check in a `CheckContext` and returns a `CheckResult`.
    summary: one line for the docs, `--help` listings and the Python function's docstring.
    metrics: every metric a result of this type can report, with whether lower or higher is
        better; baselines and decisions read it, so a metric missing here cannot be gated.
    plot: 'module:function' drawing a results record as an inline SVG string or a matplotlib
        Figure (or None for no plot); imported only when a report is drawn.
    data_fields: fields holding extra data sources in the forms of `data` (e.g. `ood_data`):
        checked for existence at collection and loaded with the spec's data.
    docs: the page documenting the type, relative to the project's docs/ folder.
    flattened: a block field (e.g. `attack`) whose keys the Python function also accepts as
        keywords, so `adversarial(model, data, eps=0.1)` means `attack={"eps": 0.1}`.
    """

    name: str
    params: type[CheckSpec]
    run: Callable[[CheckContext, Any], CheckResult]
    summary: str
    metrics: Mapping[str, Direction] = field(default_factory=dict)
    plot: str | None = None
    data_fields: tuple[str, ...] = ()
    docs: str | None = None
    flattened: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"check type name {self.name!r} must be a Python identifier")
        bad = {
            metric: way for metric, way in self.metrics.items() if way not in ("lower", "higher")
        }
        if bad:
            raise ValueError(
                f"check type {self.name!r}: metric directions must be 'lower' or "
                f"'higher', got {bad}"
            )
        if self.plot is not None and ":" not in self.plot:
            raise ValueError(f"check type {self.name!r}: plot must be 'module:function'")

    def lower_is_better(self, metric: str) -> bool | None:
        """Whether a lower value of `metric` is better; None for a metric the type does not know."""
        way = self.metrics.get(metric)
        return None if way is None else way == "lower"

    def plotter(self) -> Callable[[dict[str, Any]], Any] | None:
        """The plot function, imported on first use."""
        if self.plot is None:
            return None
        module, _, function = self.plot.partition(":")
        return getattr(importlib.import_module(module), function)
