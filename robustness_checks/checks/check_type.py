"""`CheckType`: the one record per check type that YAML, Python, reports and gating all read."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from robustness_checks.details import Details

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
    details: the typed model of the result's details (a `Details` subclass); it also declares the
        values baselines gate (`Details.gated`). The free-form base by default.
    decides: the metrics a bound can be put on (default: every metric); the others are only
        reported and gated.
    validity: 'module:function' returning the type's `ValidityCase`s, one per deciding metric:
        populations with known values that the decision validity harness measures every rule on.
    gate_cases: 'module:function' returning the type's `GateCase`s: a model, data and a known
        regression per gated metric, for the gate validity harness.
    random_model: what the check does when the model is random (its outputs differ for the
        same input); the warning of every such result says it.
    point_inconclusive: when a result of this type can be inconclusive under the point rule
        (None: never, which the runner enforces); docs/decisions.md states the same.
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
    details: type[Details] = Details
    decides: tuple[str, ...] = ()
    validity: str | None = None
    gate_cases: str | None = None
    random_model: str = (
        "its metrics come from one draw of the model per forward pass, repeatable under the seed"
    )
    point_inconclusive: str | None = None

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
        for name in ("plot", "validity", "gate_cases"):
            value = getattr(self, name)
            if value is not None and ":" not in value:
                raise ValueError(f"check type {self.name!r}: {name} must be 'module:function'")
        unknown = [metric for metric in self.decides if metric not in self.metrics]
        if unknown:
            raise ValueError(
                f"check type {self.name!r}: decides names metrics it does not declare: {unknown}"
            )
        if not (isinstance(self.details, type) and issubclass(self.details, Details)):
            raise ValueError(
                f"check type {self.name!r}: details must be a robustness_checks.details.Details "
                f"subclass, got {self.details!r}"
            )

    def lower_is_better(self, metric: str) -> bool | None:
        """Whether a lower value of `metric` is better; None for a metric the type does not know."""
        way = self.metrics.get(metric)
        return None if way is None else way == "lower"

    def gated_metrics(self, params: Any) -> set[str]:
        """The metrics whose values a check with `params` gates: its `metric` alone when its
        details gate only the headline, else every metric of the type."""
        breakdown = self.details.breakdown is not Details.breakdown
        metric = getattr(params, "metric", None)
        if not breakdown and self.details.headline_gated and metric in self.metrics:
            return {metric}
        return set(self.metrics) if breakdown else set(self.deciding_metrics())

    def deciding_metrics(self) -> tuple[str, ...]:
        """The metrics a bound can be put on."""
        return self.decides or tuple(self.metrics)

    def plotter(self) -> Callable[..., Any] | None:
        """The plot function, imported on first use."""
        return None if self.plot is None else _imported(self.plot)

    def validity_cases(self) -> list[Any] | None:
        """The type's decision validity cases (None when it declares none)."""
        return None if self.validity is None else list(_imported(self.validity)())

    def gate_case_list(self) -> list[Any] | None:
        """The type's gate validity cases (None when it declares none)."""
        return None if self.gate_cases is None else list(_imported(self.gate_cases)())


def _imported(reference: str) -> Any:
    """The object 'module:function' names."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
