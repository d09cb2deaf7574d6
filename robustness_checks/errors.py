"""Exceptions that tell the user what was wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


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


class SpecError(RobustnessError):
    """A spec file that cannot be used; carries every problem found, with its line."""

    def __init__(self, path: str, problems: list[SpecProblem]):
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"invalid robustness spec {self.path}:"]
        lines += [f"  {problem.render(self.path)}" for problem in self.problems]
        return "\n".join(lines)


class LoadError(RobustnessError):
    """A model, weights file or data set that could not be loaded."""


class ModelOutputError(RobustnessError):
    """The model returned something a classifier should not (NaN, wrong shape)."""


class RobustnessWarning(UserWarning):
    """Something that makes a measurement doubtful without stopping it: a model that returns
    probabilities instead of logits, gradients that are zero (gradient masking), a device
    fallback. The check still runs; the warning is kept in its result (`CheckResult.warnings`)."""
