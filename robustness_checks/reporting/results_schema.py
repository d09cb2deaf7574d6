"""The results file's schema: one record model per check type, its details that type's model."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from robustness_checks.details import PartialWork
from robustness_checks.results import Comparison, Decision, Outcome


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatedEntry(_Model):
    """A gated value (`robustness_checks.details.GatedValue`) as the results file writes it."""

    label: str = Field(description="unique in its result, e.g. 'accuracy_drop at eps=0.1'")
    metric: str
    value: float | None
    lower_is_better: bool
    ci: tuple[float | None, float | None] | None = None
    at: dict[str, float | int | str] = Field(default_factory=dict)


class BaselineComparison(_Model):
    """How a result compared with the baseline (`--robustness-compare`)."""

    name: str
    status: Literal["compared", "not comparable", "not in baseline"]
    reasons: list[str]
    compared_values: int
    gated_values: int
    value: float | None
    metric: str | None
    model_changed: bool
    data_changed: bool
    settings_changed: bool
    rules: list[str] = Field(default_factory=list, description="the rules that gated a value")


class NoDetails(_Model):
    """The details of a result that measured nothing (an error or a skipped check); a check
    stopped by its timeout keeps what it had finished."""

    timed_out: PartialWork | None = None


class RecordBase(_Model):
    """Fields every results record has."""

    nodeid: str
    id: str | None = Field(None, description="unique in the run: the node id, '::check' added")
    spec: str | None
    check: str
    type: str
    metric: str
    value: float | None
    comparison: Comparison | None
    threshold: float | None
    ci: tuple[float | None, float | None] | None
    confidence: float
    decision: Decision
    evaluations: int
    seconds: float
    examples: int
    examples_per_second: float | None
    evaluations_per_second: float | None
    passed: bool
    outcome: Outcome
    message: str
    warnings: list[str]
    gated: list[GatedEntry]
    error: str | None = None
    fingerprints: dict[str, str] | None = None
    settings: dict[str, Any] | None = None
    rounds_seconds: list[float] | None = None
    baseline: BaselineComparison | None = None
    regression: str | None = None


class Environment(BaseModel):
    """Versions and device of the run (more keys may follow)."""

    model_config = ConfigDict(extra="allow")

    python: str
    torch: str
    device: str


@cache
def results_model() -> type[BaseModel]:
    """The pydantic model of a results document, records discriminated by check `type`."""
    from robustness_checks.checks.registry import CHECK_TYPES

    variants = [
        create_model(
            f"{name}_result",
            __base__=RecordBase,
            type=(Literal[name], ...),  # type: ignore[valid-type]
            details=(entry.details | NoDetails, ...),
        )
        for name, entry in CHECK_TYPES.items()
    ]
    variants.append(
        create_model(
            "crashed_result",
            __base__=RecordBase,
            type=(Literal[""], ...),
            details=(NoDetails, ...),
            __doc__="A check an xdist worker was running when it crashed.",
        )
    )
    record = Annotated[Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007
    return create_model(
        "RobustnessResults",
        __base__=_Model,
        schema_version=(Literal[1], ...),
        created=(str, ...),
        environment=(Environment, ...),
        specs=(dict[str, dict[str, Any]], ...),
        results=(list[record], ...),  # type: ignore[valid-type]
        complete=(bool, True),
        baseline=(str | None, None),
        baseline_comparison=(dict[str, Any] | None, None),
    )


def results_json_schema() -> dict[str, Any]:
    """The JSON Schema of `--robustness-json` files (and saved baselines)."""
    schema = results_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "robustness_checks results"
    return schema
