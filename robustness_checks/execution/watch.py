"""A check's time limit and progress lines, looked at on every forward pass (between batches)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from robustness_checks.errors import RobustnessError

PROGRESS_ENV = "ROBUSTNESS_PROGRESS_SECONDS"  # seconds between progress lines (default 5)


class CheckTimeout(RobustnessError):
    """A check that ran past its `timeout`; the message says how far it got."""


class Watch:
    """Started with the check; `tick` raises CheckTimeout past the deadline and reports progress
    (evaluations, forward batches, elapsed time) to `report` every few seconds
    (ROBUSTNESS_PROGRESS_SECONDS, default 5)."""

    def __init__(
        self,
        name: str,
        timeout: float | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.report = report
        self.start = time.monotonic()
        self.last = self.start
        self.batches = 0
        self.every = float(os.environ.get(PROGRESS_ENV, "5"))

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` of work that is not the check's (the randomness probe) out of the
        time limit."""
        self.start += seconds

    def tick(self, evaluations: int) -> None:
        now = time.monotonic()
        self.batches += 1
        elapsed = now - self.start
        if self.timeout is not None and elapsed > self.timeout:
            raise CheckTimeout(
                f"check {self.name!r} ran past its timeout of {self.timeout:g} s after "
                f"{self.batches:,} forward batches ({evaluations:,} evaluations); raise `timeout` "
                "(spec, check or --robustness-timeout) or give the check less work"
            )
        if self.report is not None and now - self.last >= self.every:
            self.last = now
            self.report(
                f"  {self.name}: {self.batches:,} forward batches, {evaluations:,} evaluations, "
                f"{elapsed:.0f} s"
            )
