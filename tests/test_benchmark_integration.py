"""Spec checks as pytest-benchmark benchmarks: saved, compared, listed, run `rounds` times."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-benchmark disables itself in xdist workers, which it tells by this variable; when
    this suite runs under `-n 2`, the in-process runs here would inherit it."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


pytest.importorskip("pytest_benchmark")

# Every forward pass appends its batch size to calls.log, so the test can count the runs.
FACTORIES = """\
from pathlib import Path

import torch
from robustness_checks.demo.model import digits_cnn

LOG = Path(__file__).parent / "calls.log"


class Logged(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = digits_cnn(pretrained=True)

    def forward(self, x):
        with LOG.open("a") as log:
            log.write(f"{x.shape[0]}\\n")
        return self.net(x)


def model():
    return Logged()
"""

SPEC = """\
model: {{factory: factories.py:model}}
data: {{factory: robustness_checks.demo.digits:test_set, kwargs: {{limit: 60}}}}
checks:
  - {{name: calibrated, type: calibration, metric: ece, max: 0.5{extra}}}
  - {{name: log-loss, type: calibration, metric: nll}}
"""


def write(pytester: pytest.Pytester, extra: str = "") -> None:
    pytester.makepyfile(factories=FACTORIES)
    pytester.makefile(".robustness.yaml", gate=SPEC.format(extra=extra))


def evaluated(pytester: pytest.Pytester) -> int:
    """Inputs the model has seen so far (over every run in this folder)."""
    log = pytester.path / "calls.log"
    return sum(int(line) for line in log.read_text().split()) if log.exists() else 0


def saved_benchmarks(pytester: pytest.Pytester) -> list[dict]:
    files = sorted((pytester.path / ".benchmarks").rglob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())["benchmarks"]


def test_autosave_stores_every_spec_check_and_compare_lists_them(
    pytester: pytest.Pytester,
) -> None:
    write(pytester)
    pytester.runpytest("-p", "no:xdist", "--benchmark-autosave").assert_outcomes(passed=2)
    benchmarks = {bench["name"]: bench for bench in saved_benchmarks(pytester)}
    assert set(benchmarks) == {"calibrated", "log-loss"}
    calibrated = benchmarks["calibrated"]
    assert calibrated["group"] == "gate.robustness.yaml"
    assert calibrated["fullname"] == "gate.robustness.yaml::calibrated"
    assert calibrated["stats"]["rounds"] == 1
    info = calibrated["extra_info"]
    assert info["metric"] == "ece" and 0 <= info["value"] <= 0.5
    assert info["evaluations"] == 60 and info["examples"] == 60
    assert info["examples_per_second"] > 0 and info["outcome"] == "passed"

    result = pytester.runpytest(
        "-p", "no:xdist", "--benchmark-compare", "--benchmark-compare-fail=min:10000%"
    )
    result.assert_outcomes(passed=2)
    # The table is sorted by time: each row is looked for on its own.
    rows = ["*'gate.robustness.yaml': 4 tests*", "calibrated (0001_*", "log-loss (0001_*"]
    for row in [*rows, "calibrated (NOW)*", "log-loss (NOW)*"]:
        result.stdout.fnmatch_lines([row])
    listed = pytester.run(sys.executable, "-m", "pytest_benchmark", "compare", "--group-by=group")
    assert listed.ret == 0
    for row in ("*benchmark 'gate.robustness.yaml': 2 tests*", "calibrated *", "log-loss *"):
        listed.stdout.fnmatch_lines([row])


def test_rounds_run_the_check_that_often_and_keep_one_result(pytester: pytest.Pytester) -> None:
    write(pytester)
    pytester.runpytest("-p", "no:xdist", "--robustness-save=one").assert_outcomes(passed=2)
    once = evaluated(pytester)

    write(pytester, extra=", benchmark: {rounds: 2}")
    result = pytester.runpytest(
        "-p",
        "no:xdist",
        "--robustness-benchmark",
        "--benchmark-json=bench.json",
        "--robustness-json=r.json",
        # Benchmark settings are not what the check measures: the baseline still compares.
        "--robustness-compare=one",
        "--robustness-compare-strict",
    )
    result.assert_outcomes(passed=2)
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    assert [r["check"] for r in records] == ["calibrated", "log-loss"]  # recorded once each
    calibrated = records[0]
    assert calibrated["baseline"]["settings_changed"] is False
    # Timed, the second run ran `calibrated` twice and `log-loss` once, each paying for its own
    # 60 inputs (no reuse of a neighbour's logits) and the randomness probe's two passes over
    # 32, which `evaluations` leaves out. Untimed, log-loss had reused calibrated's logits.
    second = evaluated(pytester) - once
    probe = calibrated["details"]["model_randomness"]["forward_passes"]
    assert second == 3 * (calibrated["evaluations"] + probe) == 3 * (60 + 2 * 32)
    assert once == 60 + 2 * probe
    rounds = {
        bench["name"]: bench["stats"]["rounds"]
        for bench in json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    }
    assert rounds == {"calibrated": 2, "log-loss": 1}


def test_without_benchmark_options_rounds_are_ignored(pytester: pytest.Pytester) -> None:
    write(pytester, extra=", benchmark: {rounds: 3}")
    pytester.runpytest("-p", "no:xdist").assert_outcomes(passed=2)
    # Each check ran once: the first's 60 inputs (the second reuses its logits) and each one's
    # randomness probe, two passes over 32.
    assert evaluated(pytester) == 60 + 2 * (2 * 32)
    assert not list((pytester.path / ".benchmarks").rglob("*.json"))


def test_robustness_benchmark_without_the_plugin_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    write(pytester)
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:benchmark", "--robustness-benchmark")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--robustness-benchmark needs the pytest-benchmark plugin*"])


def test_rounds_are_validated(pytester: pytest.Pytester) -> None:
    write(pytester, extra=", benchmark: {rounds: 0}")
    result = pytester.runpytest("-p", "no:xdist")
    assert result.ret != 0
    assert "rounds" in result.stdout.str()


def test_compare_fail_fails_the_session_not_the_checks(pytester: pytest.Pytester) -> None:
    write(pytester)
    pytester.runpytest("-p", "no:xdist", "--benchmark-autosave").assert_outcomes(passed=2)
    (saved,) = (pytester.path / ".benchmarks").rglob("*.json")
    document = json.loads(saved.read_text())
    for bench in document["benchmarks"]:
        bench["stats"]["min"] = 1e-9  # a baseline no run can match
    saved.write_text(json.dumps(document))
    result = pytester.runpytest(
        "-p",
        "no:xdist",
        "--benchmark-compare",
        "--benchmark-compare-fail=min:50%",
        "--junitxml=junit.xml",
        "--robustness-json=r.json",
    )
    # pytest-benchmark's own behaviour, as for any benchmark: the items pass (JUnit has no
    # failure), and the session ends with PerformanceRegression raised in the terminal summary.
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "Performance has regressed" in output and "calibrated (0001_" in output
    suite = ET.parse(pytester.path / "junit.xml").find(".//testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "0")
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    assert all(record["passed"] for record in records)


def test_spec_checks_count_as_benchmarks_for_only_and_skip(pytester: pytest.Pytester) -> None:
    write(pytester)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    # Without the integration they are no benchmarks: --benchmark-only skips them.
    pytester.runpytest("-p", "no:xdist", "--benchmark-only").assert_outcomes(skipped=3)
    ran = pytester.runpytest("-p", "no:xdist", "--benchmark-only", "--robustness-benchmark")
    ran.assert_outcomes(passed=2, skipped=1)
    skipped = pytester.runpytest("-p", "no:xdist", "--benchmark-skip", "--robustness-benchmark")
    skipped.assert_outcomes(passed=1, skipped=2)
    # --benchmark-skip alone leaves spec checks alone: they are no benchmarks then.
    pytester.runpytest("-p", "no:xdist", "--benchmark-skip").assert_outcomes(passed=3)
