"""A check's time limit and progress lines, looked at on every forward pass (between batches)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from robustness_checks.errors import RobustnessError

PROGRESS_ENV = "ROBUSTNESS_PROGRESS_SECONDS"  # seconds between progress lines (default 5)


class CheckTimeout(RobustnessError):
    """A check that ran past its `timeout`; the message says how far it got. `finished` holds
    the outputs of the batches of the current pass over the data that were done (joined as
    `map_examples` joins them) and `figures` what the check makes of them."""

    def __init__(self, message: str, done: int = 0, total: int = 0) -> None:
        super().__init__(message)
        self.done, self.total = done, total
        self.finished: dict[str, Any] = {}
        self.figures: dict[str, float] = {}


class Watch:
    """Started with the check; `tick` raises CheckTimeout past the deadline and reports progress
    (evaluations, forward batches, elapsed time, and within a pass over the data the examples
    done and an estimate of the time that pass has left) to `report` every `every` seconds
    (ROBUSTNESS_PROGRESS_SECONDS overrides it; default 5)."""

    def __init__(
        self,
        name: str,
        timeout: float | None = None,
        report: Callable[[str], None] | None = None,
        every: float = 5.0,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.report = report
        self.start = time.monotonic()
        self.last = self.start
        self.batches = 0
        self.every = float(os.environ.get(PROGRESS_ENV, every))
        self.done, self.total, self.pass_start = 0, 0, self.start

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` of work that is not the check's (the randomness probe) out of the
        time limit."""
        self.start += seconds

    def examples(self, done: int, total: int) -> None:
        """`done` of the `total` examples of the current pass over the data are finished."""
        self.done, self.total = done, total

    def begin_pass(self, total: int) -> None:
        """A pass over `total` examples starts (map_examples)."""
        self.done, self.total, self.pass_start = 0, total, time.monotonic()

    def tick(self, evaluations: int) -> None:
        now = time.monotonic()
        self.batches += 1
        elapsed = now - self.start
        if self.timeout is not None and elapsed > self.timeout:
            done = (
                f", {self.done:,} of {self.total:,} examples of its pass over the data done"
                if self.total
                else ""
            )
            raise CheckTimeout(
                f"check {self.name!r} ran past its timeout of {self.timeout:g} s after "
                f"{self.batches:,} forward batches ({evaluations:,} evaluations{done}); raise "
                "`timeout` (spec, check or --robustness-timeout), give the check less work "
                "(`limit`), or see its cost first (python -m robustness_checks validate --cost)",
                self.done,
                self.total,
            )
        if self.report is not None and now - self.last >= self.every:
            self.last = now
            self.report(
                f"  {self.name}: {self.batches:,} forward batches, {evaluations:,} evaluations, "
                f"{elapsed:.0f} s{self._pass_line(now)}"
            )

    def _pass_line(self, now: float) -> str:
        """', 120 of 400 examples of this pass, about 35 s left' once a batch is done."""
        if not self.total or not self.done:
            return ""
        left = (now - self.pass_start) * (self.total - self.done) / self.done
        return f", {self.done:,} of {self.total:,} examples of this pass, about {left:.0f} s left"
