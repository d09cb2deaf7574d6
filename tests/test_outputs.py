"""Outputs that lose nothing: paths checked before the run, writes that follow links and refuse
what is not a file, one failed report never stopping the others; third-party check types whose
records or results are broken fail alone, naming themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SPEC = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
  kwargs: {pretrained: true}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {limit: 60}
checks:
  - {name: calibrated, type: calibration, max: 0.5, bootstrap: 20}
"""


@pytest.fixture
def spec(pytester: pytest.Pytester) -> Path:
    return pytester.makefile(".robustness.yaml", model=SPEC)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


@pytest.mark.parametrize(
    ("option", "path", "why"),
    [
        (
            "--robustness-json",
            "blocker/r.json",
            "*blocker is a file, so *blocker cannot be a folder",
        ),
        (
            "--robustness-html",
            "blocker/r.html",
            "*blocker is a file, so *blocker cannot be a folder",
        ),
        ("--junitxml", "blocker/j.xml", "*blocker is a file, so *blocker cannot be a folder"),
        ("--robustness-json", "folder", "*folder is a folder; reports are written only to regular"),
        ("--robustness-json", "fifo", "*fifo is a FIFO; reports are written only to regular files"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_a_usage_error_before_any_check(
    pytester: pytest.Pytester, spec: Path, option: str, path: str, why: str
) -> None:
    (pytester.path / "blocker").write_text("a file")
    (pytester.path / "folder").mkdir()
    os.mkfifo(pytester.path / "fifo")
    result = run(pytester, f"{option}={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {option} {path}: {why}*"])
    assert "passed" not in result.stdout.str()  # nothing ran


def test_an_unwritable_storage_is_a_usage_error(pytester: pytest.Pytester, spec: Path) -> None:
    (pytester.path / "store").write_text("a file, not a folder")
    result = run(pytester, "--robustness-storage=store", "--robustness-save=base")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--robustness-storage *store (for --robustness-save): *not a folder*"]
    )


def test_a_read_only_folder_is_a_usage_error() -> None:
    """As another user than root where the tests run as root (root writes anywhere)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        _read_only_folder(Path(folder))


def _read_only_folder(tmp_path: Path) -> None:
    import shutil

    tmp_path.chmod(0o777)
    (tmp_path / "model.robustness.yaml").write_text(SPEC)
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--robustness-json=locked/r.json",
    ]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop privileges")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = {**os.environ, "HOME": str(tmp_path), "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path)}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "--robustness-json locked/r.json: it cannot be written: Permission denied" in done.stderr


def test_a_symlinked_report_updates_its_target_and_stays_a_link(
    pytester: pytest.Pytester, spec: Path
) -> None:
    target = pytester.path / "reports" / "latest.json"
    target.parent.mkdir()
    target.write_text("old")
    (pytester.path / "r.json").symlink_to(target)
    run(pytester, "--robustness-json=r.json").assert_outcomes(passed=1)
    assert (pytester.path / "r.json").is_symlink()
    assert json.loads(target.read_text())["results"][0]["check"] == "calibrated"


def test_atomic_writes_refuse_what_is_not_a_regular_file(tmp_path: Path) -> None:
    from robustness_checks.reporting.atomic import ReportWriteError, write_text_atomic

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ReportWriteError, match="is a FIFO; reports are written only to regular"):
        write_text_atomic(tmp_path / "fifo", "x")
    (tmp_path / "link").symlink_to(tmp_path / "fifo")
    with pytest.raises(ReportWriteError, match=r"\(the target of the link .*link\) is a FIFO"):
        write_text_atomic(tmp_path / "link", "x")
    assert stat_kind(tmp_path / "fifo") == "fifo"


def stat_kind(path: Path) -> str:
    import stat

    return "fifo" if stat.S_ISFIFO(path.stat().st_mode) else "other"


def test_one_report_that_fails_to_write_loses_none_of_the_others(
    pytester: pytest.Pytester, spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robustness_checks.reporting import html_report

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(html_report, "write_html", broken)
    result = run(
        pytester,
        "--robustness-json=r.json",
        "--robustness-html=r.html",
        "--robustness-save=base",
        "--junitxml=j.xml",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the run says something was lost
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*calibrated*calibration*ece*passed*",  # the terminal table is there
            "error: the HTML report (r.html) could not be written: OSError: *No space left*",
            "JSON report written to r.json",
        ]
    )
    assert json.loads((pytester.path / "r.json").read_text())["results"]
    assert (pytester.path / ".robustness" / "base.json").exists()
    assert (pytester.path / "j.xml").exists()


BROKEN_PLUGIN = """\
from typing import Literal

from robustness_checks.checks.check_type import CheckType
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec


class Params(CheckSpec):
    type: Literal["{name}"]


def run(context, params):
    {body}


CHECK = CheckType(
    name="{name}", params={params}, run=run, summary="broken", metrics={{"m": "higher"}}
)
"""

PLUGINS = {
    "not_a_spec": ("dict", "return None"),
    "returns_dict": ("Params", "return {'value': 1.0}"),
    "returns_none": ("Params", "return None"),
    "nan_passes": (
        "Params",
        "return CheckResult(check='c', type='nan_passes', metric='m', value=float('nan'))",
    ),
}


def _install(site: Path) -> None:
    lines = []
    for name, (params, body) in PLUGINS.items():
        (site / f"plugin_{name}.py").write_text(
            BROKEN_PLUGIN.format(name=name, params=params, body=body)
        )
        lines.append(f"{name} = plugin_{name}:CHECK")
    info = site / "broken_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[robustness_checks.checks]\n" + "\n".join(lines) + "\n")


def test_broken_third_party_check_types_fail_alone_and_name_themselves(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    good = SPEC
    (tmp_path / "good.robustness.yaml").write_text(good)
    for name in PLUGINS:
        (tmp_path / f"{name}.robustness.yaml").write_text(
            good.replace("type: calibration, max: 0.5, bootstrap: 20", f"type: {name}")
        )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--robustness-json=r.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    # The spec of a type whose record is broken fails its collection, naming the plugin.
    assert "check type 'not_a_spec' is installed but cannot be used" in out
    assert "its params is <class 'dict'>, not a subclass of" in out
    # The others run; a run function returning the wrong thing is that check's error.
    records = {
        r["type"] or r["check"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]
    }
    assert records["calibration"]["outcome"] == "passed"
    for name, kind in (("returns_dict", "dict"), ("returns_none", "NoneType")):
        error = records[name]["error"]
        assert f"check type {name!r} (from plugin_{name}) returned {kind}" in error
    assert "returned value nan with outcome 'passed'" in records["nan_passes"]["error"]
    assert "Traceback" not in out and "AttributeError" not in out


def test_terminal_text_escapes_control_characters_and_lone_surrogates() -> None:
    from robustness_checks.reporting.terminal import safe_text, summary_lines

    assert safe_text("a\x1b[31mred\ttab\x00nul\udc80 naïve ✓") == (
        "a\\x1b[31mred\\ttab\\x00nul\\udc80 naïve ✓"
    )
    record = {
        "nodeid": "x.py::test_it",
        "id": "x.py::test_it::bad\x1bname",
        "type": "calibration",
        "metric": "ece",
        "value": 0.1,
        "outcome": "passed",
    }
    assert "\x1b" not in "\n".join(summary_lines([record]))
