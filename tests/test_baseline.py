"""Release gating: saved baselines, regressions as failed items, data changes, bad usage."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from robustness_checks.details import GatedValue
from robustness_checks.gating.baseline import BaselineError, parse_rule
from robustness_checks.gating.compare import regressed, rule_matches

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
data: {{factory: robustness_checks.demo.digits:test_set, kwargs: {{limit: {limit}}}}}
checks:
  - {{name: calibrated, type: calibration, metric: ece, max: 0.5}}
  - {{name: log-loss, type: calibration, metric: nll}}
"""


def write(pytester: pytest.Pytester, scale: float = 1.0, limit: int = 300) -> None:
    pytester.makepyfile(factories=FACTORIES)
    pytester.makefile(".robustness.yaml", gate=SPEC.format(scale=scale, limit=limit))


def test_a_worse_model_fails_the_gate_as_a_named_item(pytester: pytest.Pytester) -> None:
    write(pytester)
    pytester.runpytest("--robustness-save=release").assert_outcomes(passed=2)
    saved = json.loads((pytester.path / ".robustness" / "release.json").read_text())
    assert saved["baseline"] == "release" and len(saved["results"]) == 2
    assert set(saved["results"][0]["fingerprints"]) == {"model", "data", "check"}

    write(pytester, scale=0.3)  # an under-confident candidate: worse ECE and NLL
    result = pytester.runpytest(
        "--robustness-compare=release",
        "--robustness-compare-fail",
        "ece:+0.01",
        "--junitxml=junit.xml",
        "--robustness-json=r.json",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines(
        [
            r".*calibration check 'calibrated' failed: regression: ece rose from 0\.0\d+ in "
            r"baseline 'release' to 0\.\d+; ece:\+0\.01 allows at most 0\.0\d+",
        ]
    )
    testcase = ET.parse(pytester.path / "junit.xml").find(".//testcase[@name='calibrated']")
    assert testcase.find("failure") is not None
    record = json.loads((pytester.path / "r.json").read_text())["results"][0]
    assert record["outcome"] == "failed" and record["regression"].startswith("ece rose")
    assert record["baseline"]["model_changed"] is True
    assert record["baseline"]["data_changed"] is False
    assert record["baseline"]["status"] == "compared"


def test_same_model_passes_and_newest_baseline_is_the_default(pytester: pytest.Pytester) -> None:
    write(pytester)
    pytester.runpytest("--robustness-save=a").assert_outcomes(passed=2)
    result = pytester.runpytest("--robustness-compare", "--robustness-compare-fail=*:x1.0001")
    result.assert_outcomes(passed=2)


def test_changed_data_is_not_comparable_and_fails_under_strict(pytester: pytest.Pytester) -> None:
    write(pytester)
    pytester.runpytest("--robustness-save=release").assert_outcomes(passed=2)
    write(pytester, scale=0.3, limit=200)
    result = pytester.runpytest("--robustness-compare=release", "--robustness-compare-fail=ece:+0")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*NotComparableWarning*not comparable with baseline 'release'*the data differs*",
            "compared 0 of 2 checks against baseline 'release' (0 gated by a rule)",
            "warning: 2 checks are not comparable with baseline 'release'*",
        ]
    )
    strict = pytester.runpytest(
        "--robustness-compare=release",
        "--robustness-compare-fail=ece:+0",
        "--robustness-compare-strict",
    )
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["*regression: not comparable with baseline 'release': the data*"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--robustness-compare=nope"], "no baseline 'nope'"),
        (["--robustness-compare-fail=ece:+0.1"], "needs a baseline"),
        (["--robustness-compare=old", "--robustness-compare-fail=ece:bigger"], "cannot read"),
    ],
)
def test_bad_usage_is_a_usage_error(
    pytester: pytest.Pytester, arguments: list[str], message: str
) -> None:
    (pytester.path / ".robustness").mkdir()
    (pytester.path / ".robustness" / "old.json").write_text('{"schema_version": 1, "results": []}')
    result = pytester.runpytest(*arguments)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_incompatible_baseline_file(pytester: pytest.Pytester) -> None:
    (pytester.path / "old.json").write_text('{"schema_version": 7}')
    result = pytester.runpytest("--robustness-compare=old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "not a results file of schema_version 1" in result.stderr.str()


@pytest.mark.parametrize(
    ("rule", "before", "now", "comparison", "regressed_"),
    [
        ("ece:+0.01", 0.02, 0.0301, "<=", True),
        ("ece:+0.01", 0.02, 0.0299, "<=", False),
        ("auroc:+2%", 0.90, 0.881, ">=", True),  # may fall to 0.882
        ("auroc:+2%", 0.90, 0.883, ">=", False),
        ("noise:x2", 1e-5, 2.1e-5, "<=", True),
        ("noise:x2", 1e-5, 1.9e-5, "<=", False),
        ("other:+0", 0.1, 0.9, "<=", False),  # the rule does not match this check
    ],
)
def test_rules(rule: str, before: float, now: float, comparison: str, regressed_: bool) -> None:
    metric = rule.split(":")[0] if not rule.startswith("other") else "ece"
    kind = "noise" if metric == "noise" else "t"
    metric = "probability" if metric == "noise" else metric
    record = {"check": "c", "type": kind, "metric": metric}
    lower = comparison == "<="
    value = GatedValue(metric=metric, value=now, lower_is_better=lower)
    old = GatedValue(metric=metric, value=before, lower_is_better=lower)
    parsed = parse_rule(rule)
    found = rule_matches(parsed, record, value) and regressed(value, old, parsed, "b") is not None
    assert found is regressed_


def test_rule_parsing_errors() -> None:
    for text in ("ece", "ece:0.1.2", "noise:x0.5", "ece:+-1"):
        with pytest.raises(BaselineError):
            parse_rule(text)
