"""Release gates that never pass by comparing nothing: keys, matching, settings, every value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SPEC = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
  kwargs: {{pretrained: true}}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {{limit: 120}}
checks:
  - {{name: calibrated, type: calibration, max: 0.5, bootstrap: 20}}
  - name: robust
    type: adversarial
    attack: {{method: pgd, eps: [0.05, 0.1], steps: {steps}}}
    gradient_masking: warn{bound}
"""


def write(pytester: pytest.Pytester, steps: int = 3, bound: bool = False) -> Path:
    path = pytester.path / "specs" / "model.robustness.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(SPEC.format(steps=steps, bound="\n    min_accuracy: 0.0" if bound else ""))
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "specs", *args)


def doctor(record: dict, label: str, **changes: object) -> None:
    """Change one gated value of a saved baseline record (what the gate compares)."""
    entry = next(value for value in record["gated"] if value["label"] == label)
    entry.update(changes)
    if label == record["metric"]:
        record.update({key: value for key, value in changes.items() if key == "value"})


def test_unknown_gate_key_is_a_usage_error_listing_the_keys(pytester: pytest.Pytester) -> None:
    write(pytester)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    result = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=eec:+0.01")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*the key 'eec' (did you mean 'ece'?) matches no check*gated metrics (*ece*"]
    )
    fine = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=seconds:x50")
    fine.assert_outcomes(passed=2)


def test_another_rootdir_still_compares_every_check(pytester: pytest.Pytester) -> None:
    write(pytester)
    run(pytester, "--robustness-save=base", "--robustness-json=a.json").assert_outcomes(passed=2)
    # From inside specs/ with it as rootdir the node ids lose their "specs/" prefix.
    moved = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(pytester.path / "specs"),
        str(pytester.path / "specs"),
        f"--robustness-storage={pytester.path / '.robustness'}",
        "--robustness-compare=base",
        "--robustness-compare-fail=*:+0.0",
        f"--robustness-json={pytester.path / 'b.json'}",
    )
    moved.assert_outcomes(passed=2)
    moved.stdout.fnmatch_lines(["compared 2 of 2 checks against baseline 'base' (2 gated*"])
    document = json.loads((pytester.path / "b.json").read_text())
    assert document["baseline_comparison"]["compared"] == 2
    assert document["results"][0]["nodeid"] == "model.robustness.yaml::calibrated"


def test_checks_missing_on_either_side_are_named(pytester: pytest.Pytester) -> None:
    write(pytester)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    result = run(pytester, "--robustness-compare=base", "-k", "calibrated")
    result.stdout.fnmatch_lines(
        ["compared 1 of 1 checks*", "*1 checks of baseline 'base' did not run: *robust*"]
    )


def test_a_weakened_check_is_flagged_and_fails_under_strict(pytester: pytest.Pytester) -> None:
    write(pytester, steps=10)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    write(pytester, steps=1)
    loose = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=*:+0.0")
    loose.assert_outcomes(passed=2)
    loose.stdout.fnmatch_lines(
        ["*NotComparableWarning*robust*not comparable*settings differ*: attack.steps 10 -> 1 *"]
    )
    strict = run(
        pytester,
        "--robustness-compare=base",
        "--robustness-compare-fail=*:+0.0",
        "--robustness-compare-strict",
    )
    strict.assert_outcomes(passed=1, failed=1)


def test_every_eps_is_compared_and_named(pytester: pytest.Pytester) -> None:
    write(pytester)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    saved = pytester.path / ".robustness" / "base.json"
    document = json.loads(saved.read_text())
    robust = next(r for r in document["results"] if r["check"] == "robust")
    before = robust["details"]["per_eps"][0]["adversarial_accuracy"]
    doctor(robust, "adversarial_accuracy at eps=0.05", value=before + 0.2)  # it was better
    saved.write_text(json.dumps(document))
    result = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=robust:+0.01")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*regression: adversarial_accuracy at eps=0.05 fell from*"])


def test_evaluation_gate_is_exact(pytester: pytest.Pytester) -> None:
    # Without a bound there is no masking probe, whose fixed cost would hide the attack's.
    write(pytester, steps=3, bound=False)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    same = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=evaluations:x1.2")
    same.assert_outcomes(passed=2)
    write(pytester, steps=6)
    dearer = run(
        pytester, "--robustness-compare=base", "--robustness-compare-fail=evaluations:x1.2"
    )
    dearer.assert_outcomes(passed=1, failed=1)
    dearer.stdout.fnmatch_lines(["*regression: evaluations rose from *x1.2 allows at most*"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"schema_version": 1, "results": {"a": 1}}, "'results' must be a list"),
        ({"schema_version": 1, "results": [{"check": "x"}]}, "each with a 'nodeid'"),
        ({"schema_version": 1, "results": []}, "holds no results"),
    ],
)
def test_malformed_baselines_are_usage_errors(
    pytester: pytest.Pytester, content: dict, message: str
) -> None:
    write(pytester)
    (pytester.path / ".robustness").mkdir()
    (pytester.path / ".robustness" / "bad.json").write_text(json.dumps(content))
    result = run(pytester, "--robustness-compare=bad")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_save_name_is_checked_before_the_run(pytester: pytest.Pytester) -> None:
    write(pytester)
    result = run(pytester, "--robustness-save=../x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "a baseline name may hold only" in result.stderr.str()
    assert "passed" not in result.stdout.str()


def test_reports_agree_on_a_gated_failure(pytester: pytest.Pytester) -> None:
    import xml.etree.ElementTree as ET

    write(pytester)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    saved = pytester.path / ".robustness" / "base.json"
    document = json.loads(saved.read_text())
    calibrated = next(r for r in document["results"] if r["check"] == "calibrated")
    doctor(calibrated, "ece", value=calibrated["value"] / 10)  # it was much better calibrated
    saved.write_text(json.dumps(document))
    result = run(
        pytester,
        "--robustness-compare=base",
        "--robustness-compare-fail=ece:+0.001",
        "--robustness-json=r.json",
        "--robustness-html=r.html",
        "--junitxml=j.xml",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*check*value*baseline*delta*", "regression: *calibrated: ece rose*"]
    )
    record = next(
        r
        for r in json.loads((pytester.path / "r.json").read_text())["results"]
        if r["check"] == "calibrated"
    )
    assert record["passed"] is False and record["message"].startswith("regression: ece rose")
    assert record["examples_per_second"] > 0 and record["evaluations_per_second"] > 0
    case = next(
        c
        for c in ET.parse(pytester.path / "j.xml").iter("testcase")
        if c.get("name") == "calibrated"
    )
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["passed"] == "false" and properties["outcome"] == "failed"
    assert properties["regression"].startswith("ece rose")
    page = (pytester.path / "r.html").read_text()
    assert "regression against baseline base: ece rose" in page and "<th>delta</th>" in page


def test_significant_gate_fails_only_a_real_regression(pytester: pytest.Pytester) -> None:
    write(pytester)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    # An unchanged rerun (same numbers) and a small wobble never fail it.
    same = run(
        pytester, "--robustness-compare=base", "--robustness-compare-fail=robust:significant"
    )
    same.assert_outcomes(passed=2)
    saved = pytester.path / ".robustness" / "base.json"
    document = json.loads(saved.read_text())
    robust = next(r for r in document["results"] if r["check"] == "robust")
    row = robust["details"]["per_eps"][1]
    label = "adversarial_accuracy at eps=0.1"
    doctor(robust, label, value=row["adversarial_accuracy"] + 0.02)
    saved.write_text(json.dumps(document))
    small = run(
        pytester, "--robustness-compare=base", "--robustness-compare-fail=robust:significant"
    )
    small.assert_outcomes(passed=2)
    doctor(robust, label, value=0.95, ci=[0.9, 0.98])
    saved.write_text(json.dumps(document))
    big = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=robust:significant")
    big.assert_outcomes(passed=1, failed=1)
    big.stdout.fnmatch_lines(["*adversarial_accuracy at eps=0.1 fell significantly from 0.95*"])


def test_rounds_keep_the_fastest_time(pytester: pytest.Pytester) -> None:
    write(pytester)
    result = run(pytester, "--robustness-rounds=3", "--robustness-json=r.json")
    result.assert_outcomes(passed=2)
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    for record in records:
        times = record["rounds_seconds"]
        assert len(times) == 3 and record["seconds"] == min(times)


def test_html_draws_a_trend_line_once_the_store_holds_two_runs(pytester: pytest.Pytester) -> None:
    write(pytester)
    run(pytester, "--robustness-save=one", "--robustness-html=r.html").assert_outcomes(passed=2)
    assert '<figure class="trend">' not in (pytester.path / "r.html").read_text()
    run(pytester, "--robustness-save=two").assert_outcomes(passed=2)
    run(pytester, "--robustness-html=r.html").assert_outcomes(passed=2)
    page = (pytester.path / "r.html").read_text()
    assert page.count('<figure class="trend">') == 2
    assert "in each saved baseline, then this run" in page and "<title>one:" in page
