"""Time limits and progress lines of long checks."""

from __future__ import annotations

import json
import re
import textwrap
import time

import pytest
import torch

import robustness_checks
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.execution.watch import CheckTimeout, Watch

pytest_plugins = ["pytester"]

SLOW = """\
import time
import torch
from robustness_checks.demo.model import digits_cnn

class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = digits_cnn(pretrained=True)

    def forward(self, x):
        time.sleep(0.4)
        return self.net(x)

def model():
    return Slow()
"""


class Slow(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = digits_cnn(pretrained=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.2)
        return self.net(x)


def test_watch_raises_past_the_deadline_and_reports_progress(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    monkeypatch.setenv("ROBUSTNESS_PROGRESS_SECONDS", "0")
    watch = Watch("c", timeout=0.05, report=lines.append)
    watch.tick(10)
    assert lines and "1 forward batches, 10 evaluations" in lines[0]
    time.sleep(0.06)
    with pytest.raises(CheckTimeout, match=r"ran past its timeout of 0.05 s after 2 forward"):
        watch.tick(20)


def test_python_timeout_stops_a_slow_check() -> None:
    start = time.perf_counter()
    with pytest.raises(CheckTimeout, match=r"timeout of 0\.5 s"):
        robustness_checks.adversarial(
            Slow(), test_set(limit=40), eps=0.1, steps=50, batch_size=8, timeout=0.5
        )
    assert time.perf_counter() - start < 5


def test_spec_timeout_is_that_checks_error_and_the_others_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROBUSTNESS_PROGRESS_SECONDS", "0.3")
    pytester.makepyfile(factories=SLOW)
    pytester.makefile(
        ".robustness.yaml",
        spec=textwrap.dedent("""\
            model: {factory: factories.py:model}
            data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 40},
                   batch_size: 10}
            timeout: 3
            checks:
              - {name: slow, type: adversarial, attack: {eps: 0.1, steps: 2}}
              - {name: quick, type: calibration, bootstrap: 10, timeout: 30}
            """),
    )
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "--robustness-json=r.json")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*slow: * forward batches, * evaluations, * s*"])
    # The check's own error, not a setup's: nothing was set up that failed.
    result.stdout.fnmatch_lines(["*ERROR at call of adversarial: slow*", "ERROR *::slow - *"])
    result.stdout.no_fnmatch_line("*ERROR at setup*")
    junit = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=j.xml")
    junit.assert_outcomes(passed=1, errors=1)
    assert "<error" in (pytester.path / "j.xml").read_text()
    records = {r["check"]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    assert records["slow"]["outcome"] == "error"
    assert "ran past its timeout of 3 s" in records["slow"]["error"]
    assert "examples of its pass over the data done" in records["slow"]["error"]
    # It keeps what it finished: the examples done and their accuracy under attack. (A batch of
    # 10 takes about 4 passes of 0.4 s: one or two batches are done when 3 s run out.)
    kept = records["slow"]["details"]["timed_out"]
    assert kept["examples"] == 40 and 0 < kept["examples_done"] < 40
    assert records["slow"]["examples"] == kept["examples_done"]
    assert set(kept["figures"]) == {"clean accuracy", "accuracy at eps 0.1"}
    assert f"kept: {kept['examples_done']} of 40 examples done" in records["slow"]["error"]
    assert records["quick"]["outcome"] == "passed"
    override = pytester.runpytest(
        "-p", "no:cacheprovider", "--robustness-timeout=0.2", "--robustness-json=r.json"
    )
    override.assert_outcomes(errors=2)  # the command line's limit is every check's
    records = {r["check"]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    assert "timeout of 0.2 s" in records["slow"]["error"]


def test_progress_line_counts_examples_and_estimates_the_time_left() -> None:
    lines: list[str] = []
    watch = Watch("c", None, lines.append, every=0.0)
    watch.begin_pass(400)
    watch.tick(10)  # before any batch is done: no estimate yet
    time.sleep(0.05)
    watch.examples(100, 400)
    watch.tick(110)
    assert "examples of this pass" not in lines[0]
    assert re.fullmatch(
        r"  c: 2 forward batches, 110 evaluations, 0 s, 100 of 400 examples of this pass, "
        r"about 0 s left",
        lines[1],
    )


def test_progress_lines_reach_ci_logs_without_a_terminal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a terminal and without -v, progress lines still come (every 30 s by default;
    here every 0.3 s), with the examples done in the current pass."""
    monkeypatch.setenv("ROBUSTNESS_PROGRESS_SECONDS", "0.3")
    pytester.makepyfile(factories=SLOW)
    pytester.makefile(
        ".robustness.yaml",
        spec=textwrap.dedent("""\
            model: {factory: factories.py:model}
            data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 40},
                   batch_size: 10}
            checks:
              - {name: slow, type: calibration, bootstrap: 10}
            """),
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*slow: * forward batches, * examples of this pass, about * s left"]
    )
