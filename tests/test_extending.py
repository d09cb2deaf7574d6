"""A third-party check type, registered through the entry-point group, works end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "robustness_accuracy"
SPEC = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
  kwargs: {pretrained: true}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {limit: 200}
checks:
  - name: accurate
    type: accuracy
    min: 0.9
  - name: too-demanding
    type: accuracy
    min: 0.999
"""


def _install(site: Path) -> None:
    """What `pip install docs/examples/robustness_accuracy` leaves on sys.path, without pip."""
    shutil.copy(EXAMPLE / "robustness_accuracy.py", site)
    info = site / "robustness_accuracy-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: robustness-accuracy\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[robustness_checks.checks]\naccuracy = robustness_accuracy:CHECK\n"
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    _install(folder)
    return folder


def _run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_installed_check_type_runs_in_yaml_with_every_report(site: Path, tmp_path: Path) -> None:
    (tmp_path / "acc.robustness.yaml").write_text(SPEC)
    done = _run(
        site,
        "-m",
        "pytest",
        "acc.robustness.yaml",
        "-p",
        "no:cacheprovider",
        "--robustness-json=r.json",
        "--junitxml=j.xml",
        "--robustness-html=r.html",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # one check fails its bound
    assert "1 failed, 1 passed" in done.stdout
    results = {r["check"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert results["accurate"]["type"] == "accuracy" and results["accurate"]["passed"]
    assert results["too-demanding"]["outcome"] == "failed"
    assert 0.9 < results["accurate"]["value"] <= 1.0
    junit = (tmp_path / "j.xml").read_text()
    assert '<property name="metric" value="accuracy"' in junit
    html = (tmp_path / "r.html").read_text()
    assert "too-demanding" in html and "accuracy" in html


def test_installed_check_type_has_a_python_function_schema_and_direction(
    site: Path, tmp_path: Path
) -> None:
    script = """
import inspect, json, robustness_checks
from robustness_checks.checks.registry import lower_is_better
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
result = robustness_checks.accuracy(digits_cnn(pretrained=True), test_set(limit=100), min=0.5)
print(json.dumps({
    "passed": result.passed, "value": result.value,
    "signature": list(inspect.signature(robustness_checks.accuracy).parameters)[:3],
    "lower": lower_is_better("accuracy", "accuracy"),
}))
"""
    done = _run(site, "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["passed"] and out["value"] > 0.9
    assert out["signature"] == ["model", "data", "min"]
    assert out["lower"] is False
    schema = _run(site, "-m", "robustness_checks", "schema", cwd=tmp_path)
    assert '"accuracy"' in schema.stdout


def test_an_entry_point_that_is_not_a_check_type_is_named(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_plugin.py").write_text("CHECK = 42\n")
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[robustness_checks.checks]\nbad = broken_plugin:CHECK\n"
    )
    # The registry still loads (the other check types work); the broken entry is named where
    # it is used.
    done = _run(
        site,
        "-c",
        "from robustness_checks.checks.registry import check_type\ncheck_type('bad')",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "check type 'bad' is installed but cannot be used" in done.stderr
    assert "is a int, not a robustness_checks CheckType record" in done.stderr
