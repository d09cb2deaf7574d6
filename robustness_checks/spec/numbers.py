"""Numbers a spec may write as fractions (`eps: 8/255`), parsed without eval, shown as written."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

_DECIMAL = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?"  # 3 exponent digits: no 1e99999
_WRITTEN = re.compile(rf"\s*([+-]?{_DECIMAL})\s*(?:/\s*({_DECIMAL})\s*)?")
# The same grammar for the JSON Schema (ECMA regex, without (?:...) groups).
JSON_PATTERN = (
    r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?\s*"
    r"(/\s*(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?\s*)?$"
)
MAX_TEXT = 64  # characters of a written number; '0.5/255' needs 7
ERROR_TYPE = "spec_number"  # the pydantic error type of a refused spec number
_FORMAT = re.compile(
    r"(?P<align>(?:.?[<>^])?)[+\- ]?#?0?(?P<width>\d*)[,_]?(?:\.\d+)?(?P<type>[bcdeEfFgGnosxX%]?)"
)


class Written(float):
    """A float that remembers how the spec wrote it ('8/255'); it computes as the float does
    (arithmetic gives plain floats) and prints as written (str, repr, f'{x}' and f'{x:.3g}')."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, value: float, text: str) -> Written:
        number = super().__new__(cls, value)
        number.text = text
        return number

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        """The text for the display formats ('', 'g', '.3g', '>8'); others format the float."""
        match = _FORMAT.fullmatch(spec)
        if match is not None and match["type"] in ("", "g", "G"):
            return format(self.text, f"{match['align']}{match['width']}")
        return float.__format__(self, spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Written, (float(self), self.text))


def written_texts(block: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """{field: text, or a list of texts} for the fields of `block` holding a number written as
    text (8/255): what reports print beside the float. Fields without one are left out."""
    found: dict[str, Any] = {}
    for name in names:
        value = getattr(block, name, None)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, Written) for item in values):
            texts = [str(item) for item in values]
            found[name] = texts if isinstance(value, list) else texts[0]
    return found


class _Refused(ValueError):
    """Why a value is not a spec number, as the end of a sentence that starts with its name."""


def read_number(value: Any, name: str = "value") -> float:
    """`value` as a finite float: a number, or text such as '8/255', '0.5 / 255' or '1e-3'
    (then a `Written` that keeps the text). A ValueError in one sentence for anything else."""
    try:
        return _read(value)
    except _Refused as refused:
        raise ValueError(f"{name} {refused}") from None


def _read(value: Any) -> float:
    if isinstance(value, Written):
        number = float(value)
    elif isinstance(value, bool):
        raise _Refused(f"must be a number, not {str(value).lower()}")
    elif isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            raise _Refused(f"must be a finite number (got {value!r})") from None
        value = number
    elif isinstance(value, str):
        value = _from_text(value)
        number = float(value)
    else:
        raise _Refused(f"must be a number or a fraction like 8/255, not {_kind(value)}")
    if not math.isfinite(number):
        raise _Refused(f"must be a finite number (got {value!r})")
    return value


def _from_text(text: str) -> Written:
    match = _WRITTEN.fullmatch(text) if len(text) <= MAX_TEXT else None
    if match is None:
        shown = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."
        raise _Refused(f"{shown!r} is not a number or a fraction like 8/255")
    numerator, denominator = Fraction(match[1]), Fraction(match[2] or 1)
    if denominator == 0:
        raise _Refused(f"{text.strip()!r} divides by zero")
    try:
        number = float(numerator / denominator)
    except OverflowError:
        number = math.inf
    return Written(number, text.strip())


def _kind(value: Any) -> str:
    kinds = {list: "a list", tuple: "a list", dict: "a mapping", type(None): "null"}
    return kinds.get(type(value), f"a {type(value).__name__}")


@dataclass(frozen=True)
class NumberRule:
    """The bounds of a spec number; kept in its Annotated metadata so messages can say them."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def check(self, value: Any) -> float:
        """`value` read and within the bounds; a pydantic error of type `spec_number` whose
        message continues a sentence that starts with the field's name."""
        try:
            number = _read(value)
            shown = value if isinstance(value, int) else number
            for bound, broken, words in (
                (self.ge, number < (self.ge or 0.0), "greater than or equal to"),
                (self.gt, number <= (self.gt or 0.0), "greater than"),
                (self.le, number > (self.le or 0.0), "less than or equal to"),
            ):
                if bound is not None and broken:
                    raise _Refused(f"must be {words} {bound:g} (got {shown!r})")
        except _Refused as refused:
            raise PydanticCustomError(ERROR_TYPE, "{reason}", {"reason": str(refused)}) from None
        return number

    def describe(self) -> str:
        """'a number >= 0 or a fraction like 8/255'."""
        bounds = [
            f" {sign} {bound:g}"
            for sign, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le))
            if bound is not None
        ]
        return f"a number{' and'.join(bounds)} or a fraction like 8/255"

    def json_schema(self) -> dict[str, Any]:
        number: dict[str, Any] = {"type": "number"}
        for key, bound in (("minimum", self.ge), ("exclusiveMinimum", self.gt)):
            if bound is not None:
                number[key] = bound
        if self.le is not None:
            number["maximum"] = self.le
        text = {"type": "string", "pattern": JSON_PATTERN, "description": "e.g. 8/255 or 1e-3"}
        return {"anyOf": [number, text]}


def _as_float(value: float) -> float:
    return float(value)


def spec_number(
    *, ge: float | None = None, gt: float | None = None, le: float | None = None
) -> Any:
    """The annotation of a spec number: a float, or text like '8/255' kept as written; JSON
    dumps (settings, fingerprints) give the float."""
    rule = NumberRule(ge=ge, gt=gt, le=le)
    return Annotated[
        float | str,
        PlainValidator(rule.check),
        PlainSerializer(_as_float, when_used="json"),
        WithJsonSchema(rule.json_schema()),
        rule,
    ]


def _keep_written(value: Any) -> float:
    if isinstance(value, Written):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


NonNegativeNumber = spec_number(ge=0.0)  # eps, a perturbation's size
PositiveNumber = spec_number(gt=0.0)  # sigma, a step size
# A results-details field that holds a spec number: it keeps the written text for reports and
# is a plain number in the results file.
KeptNumber = Annotated[
    float,
    PlainValidator(_keep_written),
    PlainSerializer(_as_float, when_used="json"),
    WithJsonSchema({"type": "number"}),
]
