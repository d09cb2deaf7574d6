"""The pydantic schema of a spec's top level; each check type adds its own `CheckSpec` subclass."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
ConfidenceLevel = Annotated[float, Field(gt=0.0, lt=1.0)]
DecisionRule = Literal["point", "strict", "lenient"]
Seconds = Annotated[float, Field(gt=0.0, le=7 * 24 * 3600)]
_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")  # fullmatch: no trailing newline
_CHECK_NAME = re.compile(r"^[^\s\[\]:/\\][^\[\]:/\\]*$")
# Unicode categories a check name may not hold: a name becomes a pytest id, the environment
# variable PYTEST_CURRENT_TEST (no NUL) and terminal and report text (UTF-8, no escape codes).
_UNPRINTABLE = {
    "Cc": "a control character",
    "Cs": "a lone surrogate, which cannot be written as UTF-8",
    "Cf": "an invisible formatting character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


class StrictModel(BaseModel):
    """A schema block that refuses unknown keys."""

    # Infinity and NaN are refused everywhere: no bound, size or budget is meaningful with them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _exactly_one(block: BaseModel, fields: tuple[str, ...], what: str) -> None:
    given = [name for name in fields if getattr(block, name) is not None]
    if len(given) != 1:
        choices = ", ".join(fields)
        found = ", ".join(given) if given else "none"
        raise ValueError(f"{what} needs exactly one of {choices} (found: {found})")


class ModelSource(StrictModel):
    """Where one network comes from: a factory, a TorchScript file, a torchvision or timm name."""

    factory: str | None = Field(None, description="'pkg.module:function' or 'file.py:function'")
    torchscript: str | None = Field(None, description="path of a TorchScript file")
    torchvision: str | None = Field(None, description="torchvision.models name; never downloads")
    timm: str | None = Field(
        None, description="timm architecture name, built with pretrained=False; never downloads"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")
    weights: str | None = Field(
        None,
        description="state_dict file: .safetensors (no pickle), else a torch file loaded with "
        "weights_only",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        _exactly_one(self, ("factory", "torchscript", "torchvision", "timm"), "a model")
        if self.torchscript is not None and (self.kwargs or self.weights):
            raise ValueError(
                "a torchscript model takes no kwargs or weights (they are in the file)"
            )
        if self.factory is not None and ":" not in self.factory:
            raise ValueError(
                f"factory {self.factory!r} must look like 'pkg.module:function' "
                "or 'path/file.py:function'"
            )
        return self


class Preprocess(StrictModel):
    """Per-channel normalisation folded into the model, so checks work in raw input space."""

    mean: list[float] = Field(min_length=1)
    std: list[Annotated[float, Field(gt=0.0)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_length(self) -> Preprocess:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean has {len(self.mean)} values and std {len(self.std)}; give one per channel"
            )
        return self


class ModelSpec(ModelSource):
    """The model under test, its normalisation and optional ensemble members."""

    preprocess: Preprocess | None = None
    ensemble: list[ModelSource] | None = Field(None, min_length=1)
    output: str | Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="key, index or attribute name of the logits when forward returns a dict, a "
        "tuple or an object (one with a tensor `logits` attribute or key needs none)",
    )


class TorchvisionData(StrictModel):
    """A torchvision data set read from local files only."""

    name: str
    root: str
    train: bool = False
    kwargs: dict[str, Any] = Field(default_factory=dict)


class DataSpec(StrictModel):
    """Where the labelled examples come from, and how many to use."""

    tensors: str | None = Field(None, description=".pt or .npz file with x and y")
    factory: str | None = Field(None, description="returns a torch Dataset or an (x, y) pair")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to the factory")
    torchvision: TorchvisionData | None = None
    image_folder: str | None = Field(None, description="folder with one sub-folder per class")
    resize: Annotated[int, Field(ge=1, le=16_384)] | None = None
    center_crop: Annotated[int, Field(ge=1, le=16_384)] | None = None
    limit: PositiveInt | None = Field(None, description="use the first N examples")
    batch_size: Annotated[int, Field(ge=1, le=1 << 20)] = 256
    stream: bool | Literal["auto"] = Field(
        "auto",
        description="read a data set (factory Dataset, torchvision, image_folder) a batch at a "
        "time instead of holding it in memory; auto: when its inputs exceed 1 GiB",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        _exactly_one(self, ("tensors", "factory", "torchvision", "image_folder"), "data")
        if self.factory is not None and ":" not in self.factory:
            raise ValueError(
                f"factory {self.factory!r} must look like 'pkg.module:function' "
                "or 'path/file.py:function'"
            )
        if self.kwargs and self.factory is None:
            raise ValueError("kwargs is only used with a data factory")
        return self


class BenchmarkSettings(StrictModel):
    """How a check is timed when it is also a pytest-benchmark benchmark."""

    rounds: Annotated[int, Field(ge=1, le=1000)] = Field(
        1, description="times the check runs when benchmarked; the last round's result counts"
    )


class CheckSpec(StrictModel):
    """Fields every check has; each check type subclasses it with its own `type` literal."""

    name: str = Field(description="the pytest id of the check")
    type: str
    confidence: ConfidenceLevel | None = Field(
        None, description="confidence level of this check; default: the spec's"
    )
    marks: list[str] = Field(default_factory=list, description="pytest marks, e.g. [slow]")
    decision: DecisionRule | None = Field(
        None, description="point | strict | lenient; default: the spec's (see docs/decisions.md)"
    )
    timeout: Seconds | None = Field(
        None, description="seconds this check may run; default: the spec's (none: no limit)"
    )
    limit: PositiveInt | None = Field(
        None,
        description="use only this check's first N examples of the data (after the data's own "
        "limit): attacks on a part of a test set whose other checks use all of it",
    )
    benchmark: BenchmarkSettings | None = Field(
        None,
        description="pytest-benchmark settings ({rounds: 3}), used with --robustness-benchmark "
        "or --benchmark-autosave/-save/-compare/-json",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        _refuse_unprintable(name)
        if not _CHECK_NAME.match(name):
            raise ValueError(
                f"name {name!r} must be non-empty and contain none of '[', ']', ':', '/', '\\'"
            )
        return name

    @field_validator("marks")
    @classmethod
    def _valid_marks(cls, marks: list[str]) -> list[str]:
        for mark in marks:
            if not mark.isidentifier():
                raise ValueError(f"mark {mark!r} is not a valid pytest mark name")
        return marks


def _refuse_unprintable(name: str) -> None:
    """Raise ValueError naming the first character of `name` that is not printable text."""
    for position, char in enumerate(name):
        what = _UNPRINTABLE.get(unicodedata.category(char))
        if what is not None:
            raise ValueError(
                f"name {name!r} contains {_escaped(char)} ({what}) at position {position}: "
                "check names are pytest ids, printed in terminals and reports, so they must be "
                "printable text; remove the character or replace it with '_'"
            )


def _escaped(char: str) -> str:
    """A character as an escape: '\\x1b', '\\t' or '\\x00' below U+0100, else U+DC80."""
    return repr(char) if ord(char) < 0x100 else f"U+{ord(char):04X}"


class SpecTop(StrictModel):
    """The top level of a spec; `checks` is validated entry by entry against the registry."""

    model: ModelSpec
    data: DataSpec
    bounds: tuple[float, float] | None = Field(
        (0.0, 1.0), description="valid raw input range [lo, hi]; null = unbounded"
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    seed: int = 0
    confidence: ConfidenceLevel = 0.95
    decision: DecisionRule | None = Field(
        None,
        description="default decision rule of the checks: point | strict | lenient "
        "(--robustness-decision overrides; ini robustness_decision is the default)",
    )
    timeout: Seconds | None = Field(
        None, description="seconds each check may run (--robustness-timeout overrides)"
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast dtype of forward passes; statistics stay float32/64"
    )
    channels_last: bool | Literal["auto"] = Field(
        "auto", description="channels_last memory format for 4-d inputs (auto: on CUDA)"
    )
    checks: list[Any] = Field(min_length=1)

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float] | None) -> tuple[float, float] | None:
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"bounds must be [lo, hi] with lo < hi, got {list(bounds)}")
        return bounds

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        return check_device(device)


def check_device(device: str) -> str:
    """`device` when it is auto, cpu, cuda, cuda:N or mps; a ValueError otherwise."""
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return device


class Spec(SpecTop):
    """A validated spec: the top level plus its checks as their typed parameter models."""

    checks: list[CheckSpec]  # type: ignore[assignment]


def spec_json_schema(check_models: list[type[CheckSpec]]) -> dict[str, Any]:
    """JSON Schema of spec files, with `checks` as a union discriminated by `type`."""
    from typing import Union

    from pydantic import create_model

    check_union = Annotated[Union[tuple(check_models)], Field(discriminator="type")]  # noqa: UP007
    document = create_model(
        "RobustnessSpec",
        __base__=SpecTop,
        checks=(list[check_union], Field(min_length=1)),  # type: ignore[valid-type]
    )
    schema = document.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "robustness_checks spec"
    return schema
