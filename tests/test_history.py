"""`python -m robustness_checks history` and `load_history`: saved baselines over time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from robustness_checks.__main__ import main
from robustness_checks.gating.history import check_series, history_lines, load_history

pytest_plugins = ["pytester"]

FACTORIES = """\
import torch
from robustness_checks.demo.model import digits_cnn


class Scaled(torch.nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.net = digits_cnn(pretrained=True)
        self.register_buffer("scale", torch.tensor(scale))

    def forward(self, x):
        return self.net(x) * self.scale


def model(scale=1.0):
    return Scaled(scale)
"""

SPEC = """\
model: {{factory: factories.py:model, kwargs: {{scale: {scale}}}}}
data: {{factory: robustness_checks.demo.digits:test_set, kwargs: {{limit: 80}}}}
checks:
  - {{name: calibrated, type: calibration, metric: ece, max: 0.5}}
  - {{name: log-loss, type: calibration, metric: nll}}
"""


def test_history_prints_two_saved_runs_oldest_first(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(factories=FACTORIES)
    for name, scale in (("release-1", 1.0), ("release-2", 0.3)):
        pytester.makefile(".robustness.yaml", gate=SPEC.format(scale=scale))
        result = pytester.runpytest("-p", "no:xdist", f"--robustness-save={name}")
        result.assert_outcomes(passed=2)
    storage = pytester.path / ".robustness"
    saved = {
        name: json.loads((storage / f"{name}.json").read_text())["results"]
        for name in ("release-1", "release-2")
    }
    capsys.readouterr()
    assert main(["history", "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert out.index("release-1") < out.index("release-2")
    model_prints = {saved[n][0]["fingerprints"]["model"][:8] for n in saved}
    assert len(model_prints) == 2 and all(p in out for p in model_prints)
    assert saved["release-1"][0]["fingerprints"]["data"][:8] in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("check "))
    assert lines[head].split() == [
        "check", "metric", "#", "baseline", "value", "outcome", "evaluations", "seconds"
    ]  # fmt: skip
    rows = [line.split() for line in lines[head + 1 :]]
    assert rows[0][:4] == ["gate.robustness.yaml::calibrated", "ece", "1", "release-1"]
    assert rows[1][:2] == ["2", "release-2"]
    assert rows[2][0] == "gate.robustness.yaml::log-loss"
    from robustness_checks.results import format_number

    expected = [("release-1", 0), ("release-2", 0), ("release-1", 1), ("release-2", 1)]
    for row, (name, index) in zip(rows, expected, strict=True):
        record = saved[name][index]
        assert format_number(record["value"]) in row
        # log-loss reuses the logits calibrated computed (one spec, one clean pass).
        assert str(record["evaluations"]) == row[-2] == ("80" if index == 0 else "0")
    # The columns line up: every row of the check table has its baseline at the same offset.
    starts = {line.index("release-") for line in lines[head + 1 :] if line}
    assert len(starts) == 1


def _document(name: str, created: str, value: float) -> dict:
    record = {
        "nodeid": "specs/a.robustness.yaml::pgd",
        "spec": "specs/a.robustness.yaml",
        "check": "pgd",
        "type": "adversarial",
        "metric": "adversarial_accuracy",
        "value": value,
        "outcome": "passed",
        "passed": True,
        "evaluations": 4000,
        "seconds": 2.5,
        "examples": 200,
        "fingerprints": {"model": "ab" * 32, "data": "cd" * 32, "check": "ef" * 32},
    }
    return {"schema_version": 1, "created": created, "results": [record], "baseline": name}


def test_load_history_orders_by_date_and_skips_other_files(tmp_path: Path) -> None:
    newer = tmp_path / "a-newer.json"
    older = tmp_path / "z-older.json"
    newer.write_text(json.dumps(_document("a-newer", "2025-02-01T00:00:00Z", 0.6)))
    older.write_text(json.dumps(_document("z-older", "2025-01-01T00:00:00Z", 0.7)))
    os.utime(older, (2e9, 2e9))  # touched later: the date in the document still counts
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    runs = load_history(tmp_path)
    assert [run["name"] for run in runs] == ["z-older", "a-newer"]
    run = runs[0]
    assert run["created"] == "2025-01-01T00:00:00Z" and run["complete"] is True
    assert run["fingerprints"] == {"model": ["ab" * 32], "data": ["cd" * 32]}
    check = run["checks"]["specs/a.robustness.yaml::pgd"]
    assert check["value"] == 0.7 and check["evaluations"] == 4000 and check["seconds"] == 2.5
    series = check_series(runs)["specs/a.robustness.yaml::pgd"]
    assert [(p["run"], p["value"]) for p in series] == [("z-older", 0.7), ("a-newer", 0.6)]
    assert any("2025-01-01 00:00:00" in line for line in history_lines(runs))


def test_history_without_baselines_says_how_to_save_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_history(tmp_path / "missing") == []
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["history", "--storage", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "warning: skipped" in err and "broken.json" in err
    assert "--robustness-save NAME" in err
