"""Exceptions that tell the user what was wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

PYTHON_CALL = "<python call>"  # the `path` of a SpecError raised for a Python API call


class RobustnessError(Exception):
    """Base class of every error this library raises on purpose."""


@dataclass
class SpecProblem:
    """One problem found in a spec: where it is and what to do about it."""

    message: str
    line: int | None = None
    check: str | None = None
    field: str | None = None

    def render(self, path: str) -> str:
        where = path if self.line is None else f"{path}:{self.line}"
        parts = [where]
        if self.check:
            parts.append(f"check {self.check!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts) + f": {self.message}"


class SpecError(RobustnessError, ValueError):
    """A spec (file or Python call) that cannot be used; carries every problem found, with its
    line. A ValueError too, so Python callers can catch bad arguments the usual way."""

    def __init__(self, path: str, problems: list[SpecProblem]):
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        if self.path == PYTHON_CALL:
            return "invalid check arguments:\n" + "\n".join(
                f"  {problem.render('').removeprefix(', ')}" for problem in self.problems
            )
        lines = [f"invalid robustness spec {self.path}:"]
        lines += [f"  {problem.render(self.path)}" for problem in self.problems]
        return "\n".join(lines)


class LoadError(RobustnessError):
    """A model, weights file or data set that could not be loaded."""


class InsufficientData(RobustnessError):
    """The data cannot support the statistic (one example, no errors to rank, all scores equal).

    Under the strict and lenient rules the check is then inconclusive (the data decide nothing);
    under the point rule, which has no interval to fall back on, it is an error."""


class ModelOutputError(RobustnessError):
    """The model returned something a classifier should not (NaN, wrong shape)."""


class RobustnessWarning(UserWarning):
    """Something that makes a measurement doubtful without stopping it: a model that returns
    probabilities instead of logits, gradients that are zero (gradient masking), a device
    fallback. The check still runs; the warning is kept in its result (`CheckResult.warnings`)."""
