"""Typed result details: each check type's `Details` model and the values its gates compare."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from robustness_checks.spec.numbers import KeptNumber

if TYPE_CHECKING:
    from robustness_checks.results import CheckResult


class Block(BaseModel):
    """A typed block of a result; it also reads like the JSON mapping it is written as, so code
    written against the results file (looking up `per_eps` by key) keeps working."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=True, arbitrary_types_allowed=True)

    def __getitem__(self, key: str) -> Any:
        if key in self.__class__.model_fields or key in (self.__pydantic_extra__ or {}):
            return getattr(self, key)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.as_json()

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def keys(self) -> Iterator[str]:
        return iter(self.as_json())

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        """The keys, as a mapping's iteration gives them."""
        return iter(self.as_json())

    def __len__(self) -> int:
        return len(self.as_json())

    def as_json(self) -> dict[str, Any]:
        """The JSON form: every field, but optional ones left unset and still None omitted (in
        nested blocks too)."""
        data = self.model_dump(mode="json")
        return {
            key: _plain(getattr(self, key, None), value)
            for key, value in data.items()
            if value is not None or key in self.model_fields_set
        }


def _plain(value: Any, dumped: Any) -> Any:
    """`dumped` (the JSON form of `value`) with nested blocks written by their own `as_json`."""
    if isinstance(value, Block):
        return value.as_json()
    if isinstance(value, list | tuple) and isinstance(dumped, list):
        return [_plain(item, plain) for item, plain in zip(value, dumped, strict=False)]
    if isinstance(value, dict) and isinstance(dumped, dict):
        return {key: _plain(value.get(key), plain) for key, plain in dumped.items()}
    return dumped


class GatedValue(BaseModel):
    """One value a baseline comparison gates: a metric, where it was measured, its interval."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=True)

    metric: str
    value: float | None
    lower_is_better: bool
    ci: tuple[float, float] | None = None
    at: dict[str, float | int | str] = Field(
        default_factory=dict, description="where in the check, e.g. {'eps': 0.1} or {'input': 3}"
    )

    @property
    def label(self) -> str:
        """'ece', 'adversarial_accuracy at eps=0.1', 'probability at input=3'."""
        from robustness_checks.formatting import format_number

        if not self.at:
            return self.metric
        where = ", ".join(
            f"{key}={format_number(value) if isinstance(value, float) else value}"
            for key, value in self.at.items()
        )
        return f"{self.metric} at {where}"


class HistogramPanel(Block):
    """One panel of a score histogram: counts per bin for each group of examples."""

    label: str = ""
    counts: dict[str, list[int]]


class ScoreHistogram(Block):
    """A score's histogram by group (e.g. correct against wrong), bins shared by all panels."""

    score: str
    edges: list[float]
    panels: list[HistogramPanel]


class ConfusionMatrix(Block):
    """Counts of (true label, prediction): all of them, or the most confused pairs."""

    classes: int
    counts: list[list[int]] | None = None
    correct: int | None = None
    total: int | None = None
    most_confused: list[list[int]] | None = None


class ExampleRow(Block):
    """One example a report pictures (a failing one): what it is, what happened, its pixels."""

    index: int
    label: int
    # What the model did: clean and perturbed predictions, or a prediction and its score.
    clean_prediction: int | None = None
    clean_confidence: float | None = None
    adversarial_prediction: int | None = None
    adversarial_confidence: float | None = None
    perturbed_prediction: int | None = None
    perturbed_confidence: float | None = None
    prediction: int | None = None
    score: float | None = None
    score_name: str | None = None
    # How it was perturbed: an attack's eps and the perturbation's norm, or fuzz perturbations.
    eps: KeptNumber | None = None  # as the spec wrote it (8/255); a number in JSON
    norm: str | None = None
    perturbation_norm: float | None = None
    perturbations: list[dict[str, Any]] | None = None
    # Pixels of a small input (flattened, in `shape`), the perturbation and a saliency map.
    shape: list[int] | None = None
    input: list[float] | None = None
    perturbation: list[float] | None = None
    saliency: list[float] | None = None
    saliency_max: float | None = None
    # A larger input keeps a thumbnail: `shape` is the thumbnail's, `source_shape` the input's;
    # `pixels` (never written) holds the full-size example until its saliency is computed.
    source_shape: list[int] | None = None
    pixels: SkipJsonSchema[Any] = Field(None, exclude=True, repr=False)


class ModelRandomness(Block):
    """Whether the model gave different outputs for the same inputs, from two eval-mode passes
    over the first examples before the check ran, and what the check does about it."""

    random: bool
    examples: int
    changed_predictions: int
    largest_change: float
    forward_passes: int
    handling: str | None = None


class PartialWork(Block):
    """What a check that ran past its timeout had finished: the examples of its pass over the
    data that were done, of how many, and the figures those examples give (e.g. accuracy)."""

    examples_done: int
    examples: int
    figures: dict[str, float] = Field(default_factory=dict)

    def summary(self) -> str:
        figures = ", ".join(f"{name} {value:.4g}" for name, value in self.figures.items())
        return f"{self.examples_done:,} of {self.examples:,} examples done" + (
            f" ({figures} on those)" if figures else ""
        )


class Details(Block):
    """Details of a result. The base accepts any keys (third-party types that declare no model);
    each built-in type subclasses it with its fields and `extra="forbid"`, so a renamed key is
    an error where the details are made, not a silently missing gate or chart."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=True, arbitrary_types_allowed=True)

    # Whether the result's headline (metric, value, ci) is one of its gated values; a type
    # whose `breakdown` already holds the headline (adversarial: one row per eps) says False.
    headline_gated: ClassVar[bool] = True

    # Report pictures any type may carry: a score histogram, a confusion matrix, saliency.
    score_histogram: ScoreHistogram | None = None
    confusion_matrix: ConfusionMatrix | None = None
    saliency_maps: dict[str, Any] | None = None
    # Every check learns whether the model is random (the runner fills it in).
    model_randomness: ModelRandomness | None = None
    # A check stopped by its timeout keeps what it had finished (the runner fills it in).
    timed_out: PartialWork | None = None

    def shown_examples(self) -> list[ExampleRow]:
        """The examples the report pictures (failing ones); none by default."""
        return []

    def breakdown(self, result: CheckResult) -> list[GatedValue]:
        """The gated values beyond the headline: each eps, each input, each other metric."""
        return []

    def gated(self, result: CheckResult) -> list[GatedValue]:
        """Every value a baseline gates: the headline (unless the breakdown holds it), then
        the breakdown; labels are unique."""
        found: dict[str, GatedValue] = {}
        if self.headline_gated and result.outcome not in ("error", "skipped"):
            headline = headline_value(result)
            if headline is not None:
                found[headline.label] = headline
        for value in self.breakdown(result):
            found.setdefault(value.label, value)
        return list(found.values())


class Strict(Details):
    """Base of the built-in types' details: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=True, arbitrary_types_allowed=True)


def headline_value(result: CheckResult) -> GatedValue | None:
    """The result's own metric and value as a gated value, when its direction is known."""
    lower = (
        result.comparison == "<="
        if result.comparison is not None
        else result.lower_is_better(result.metric)
    )
    if lower is None:
        return None
    return GatedValue(metric=result.metric, value=result.value, lower_is_better=lower, ci=result.ci)


def metric_value(
    result: CheckResult,
    metric: str,
    value: float | None,
    ci: Any = None,
    **at: float | int | str,
) -> GatedValue:
    """A gated value of `metric` in the direction the result's check type declares."""
    lower = result.lower_is_better(metric)
    if lower is None:
        raise ValueError(f"check type {result.type!r} declares no direction for {metric!r}")
    interval = None if ci is None else (float(ci[0]), float(ci[1]))
    return GatedValue(
        metric=metric,
        value=None if value is None else float(value),
        lower_is_better=lower,
        ci=interval,
        at=at,
    )
