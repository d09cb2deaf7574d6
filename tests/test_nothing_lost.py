"""Nothing measured is lost and partial is marked partial: exits, skips, crashes, signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FACTORIES = """\
import os, time
import torch
from robustness_checks.demo.model import digits_cnn


class Misbehaves(torch.nn.Module):
    def __init__(self, how):
        super().__init__()
        self.net = digits_cnn(pretrained=True)
        self.how = how

    def forward(self, x):
        if self.how == "exit":
            raise SystemExit(3)
        if self.how == "kill":
            os.kill(os.getpid(), 9)
        if self.how == "sleep":
            open("sleeping", "w").close()  # tells the test that the run is inside this check
            time.sleep(60)
        return self.net(x)


def model(how="fine"):
    return Misbehaves(how)
"""


def spec(how: str, *, marks: str = "") -> str:
    return textwrap.dedent(f"""\
        model: {{factory: factories.py:model, kwargs: {{how: {how}}}}}
        data: {{factory: robustness_checks.demo.digits:test_set, kwargs: {{limit: 60}}}}
        checks:
          - {{name: c, type: calibration, bootstrap: 10{marks}}}
        """)


def records(path: Path) -> dict[str, dict]:
    document = json.loads(path.read_text())
    return {r["nodeid"].split("/")[-1]: r for r in document["results"]}


def test_system_exit_in_a_model_is_recorded_and_the_others_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=FACTORIES)
    pytester.makefile(".robustness.yaml", a_exits=spec("exit"), b_fine=spec("fine"))
    result = pytester.runpytest_subprocess("--robustness-json=r.json", "--robustness-html=r.html")
    result.assert_outcomes(passed=1, errors=1)
    found = records(pytester.path / "r.json")
    assert found["a_exits.robustness.yaml::c"]["outcome"] == "error"
    assert "SystemExit: 3" in found["a_exits.robustness.yaml::c"]["error"]
    assert found["b_fine.robustness.yaml::c"]["outcome"] == "passed"
    assert "a_exits" in (pytester.path / "r.html").read_text()


def test_skipped_checks_are_in_the_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=FACTORIES)
    pytester.makefile(".robustness.yaml", s=spec("fine", marks=", marks: [skip]"))
    result = pytester.runpytest_subprocess("--robustness-json=r.json")
    result.assert_outcomes(skipped=1)
    record = records(pytester.path / "r.json")["s.robustness.yaml::c"]
    assert record["outcome"] == "skipped" and record["passed"] is False


def test_a_killed_xdist_worker_keeps_finished_results_and_records_the_crash(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(factories=FACTORIES)
    pytester.makefile(
        ".robustness.yaml", a_fine=spec("fine"), b_killed=spec("kill"), c_fine=spec("fine")
    )
    result = pytester.runpytest_subprocess(
        "-n", "1", "-p", "xdist", "--robustness-json=r.json", "--junitxml=j.xml"
    )
    found = records(pytester.path / "r.json")
    assert found["a_fine.robustness.yaml::c"]["outcome"] == "passed"
    assert found["c_fine.robustness.yaml::c"]["outcome"] == "passed"
    crash = found["b_killed.robustness.yaml::c"]
    assert crash["outcome"] == "error" and "worker crashed" in crash["error"]
    assert "robustness_checks_record" not in (pytester.path / "j.xml").read_text()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_sigterm_writes_reports_marked_incomplete_and_saves_no_baseline(tmp_path: Path) -> None:
    (tmp_path / "factories.py").write_text(FACTORIES)
    (tmp_path / "a_fine.robustness.yaml").write_text(spec("fine"))
    (tmp_path / "b_sleeps.robustness.yaml").write_text(spec("sleep"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--robustness-json=r.json",
            "--robustness-save=release",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "sleeping").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["complete"] is False, output
    assert [r["check"] for r in document["results"] if r["outcome"] == "passed"] == ["c"]
    assert not (tmp_path / ".robustness" / "release.json").exists()
    assert "was not saved: the run was interrupted" in output
    mode = stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode)
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_concurrent_runs_on_the_same_paths_never_mix(tmp_path: Path) -> None:
    """Two runs (different seeds) write the same JSON and HTML at the same time: each file is
    wholly one run's, and the JSON and HTML of the last writer agree."""
    (tmp_path / "factories.py").write_text(FACTORIES)
    (tmp_path / "a.robustness.yaml").write_text(spec("fine"))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--robustness-json=r.json",
        "--robustness-html=r.html",
        "a.robustness.yaml",
    ]
    runs = [
        subprocess.Popen(
            [*command, f"--robustness-seed={seed}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for seed in (1, 2)
    ]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    document = json.loads((tmp_path / "r.json").read_text())
    seed = document["specs"]["a.robustness.yaml"]["seed"]
    page = (tmp_path / "r.html").read_text()
    assert f"seed {seed} " in page  # the HTML is the same run's as the JSON
    assert not list(tmp_path.glob(".r.*"))  # no temporary file left behind
