"""The pytest plugin end to end, with real spec files in temporary folders (pytester)."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

SPEC = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
  kwargs: {{pretrained: true}}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {{limit: 200}}
seed: 0
checks:
  - name: calibrated
    type: calibration
    metric: ece
    max: {ece_max}
  - name: log-loss
    type: calibration
    metric: nll
    max: 0.5
    marks: [slow]
"""

COUNTING_FACTORIES = """\
import pathlib
import torch
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn

LOG = pathlib.Path(__file__).with_name("calls.log")


def model():
    with LOG.open("a") as log:
        log.write("model\\n")
    return digits_cnn(pretrained=True)


def data():
    with LOG.open("a") as log:
        log.write("data\\n")
    return test_set(limit=100)


class NaNAfter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = digits_cnn(pretrained=True)

    def forward(self, x):
        logits = self.net(x)
        logits[5] = float("nan")
        return logits


def nan_model():
    return NaNAfter()
"""


def write_spec(pytester: pytest.Pytester, name: str = "digits", ece_max: float = 0.1) -> None:
    pytester.makefile(".robustness.yaml", **{name: SPEC.format(ece_max=ece_max)})


def read_json(pytester: pytest.Pytester, name: str = "out.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def test_spec_checks_become_items_that_pass(pytester: pytest.Pytester) -> None:
    write_spec(pytester)
    result = pytester.runpytest("-v", "--robustness-json=out.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*digits.robustness.yaml::calibrated PASSED*",
            "*digits.robustness.yaml::log-loss PASSED*",
            "*robustness checks*",
            "*calibrated*calibration*ece*<= 0.1*passed*",
        ]
    )
    document = read_json(pytester)
    assert document["schema_version"] == 1
    assert document["created"].endswith("Z")
    assert {"python", "torch", "device"} <= set(document["environment"])
    assert document["environment"]["device"] == "cpu"
    first = document["results"][0]
    assert first["nodeid"] == "digits.robustness.yaml::calibrated"
    assert first["spec"] == "digits.robustness.yaml"
    assert first["check"] == "calibrated"
    assert (first["type"], first["metric"], first["comparison"]) == ("calibration", "ece", "<=")
    assert first["threshold"] == 0.1 and first["passed"] is True and first["outcome"] == "passed"
    assert first["ci"][0] <= first["value"] <= first["ci"][1]
    assert first["confidence"] == 0.95
    assert first["evaluations"] == 200
    assert first["seconds"] > 0
    assert {"lo", "hi", "count", "confidence", "accuracy"} <= set(first["details"]["bins"][0])
    assert sum(row["count"] for row in first["details"]["bins"]) == 200
    assert 0.9 < first["details"]["accuracy"] <= 1.0

    testcase = ET.parse(pytester.path / "junit.xml").find(".//testcase[@name='calibrated']")
    properties = {p.get("name"): p.get("value") for p in testcase.iter("property")}
    assert properties["metric"] == "ece"
    assert float(properties["value"]) == pytest.approx(first["value"])
    assert properties["threshold"] == "0.1" and properties["comparison"] == "<="
    assert float(properties["ci_low"]) == pytest.approx(first["ci"][0])
    assert float(properties["ci_high"]) == pytest.approx(first["ci"][1])
    assert properties["passed"] == "true"


def test_unmet_bound_fails_with_readable_message(pytester: pytest.Pytester) -> None:
    write_spec(pytester, ece_max=0.001)
    result = pytester.runpytest("--robustness-json=out.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines(
        [
            r".*calibration check 'calibrated' failed: ece = 0\.\d+ "
            r"\(95% CI (0|0\.\d+) to 0\.\d+\) exceeds max 0\.001 on 200 examples",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    failed = read_json(pytester)["results"][0]
    assert failed["passed"] is False and failed["outcome"] == "failed"


def test_bad_spec_fails_collection_alone(pytester: pytest.Pytester) -> None:
    write_spec(pytester, "good")
    pytester.makefile(
        ".robustness.yaml",
        bad=SPEC.format(ece_max=0.1).replace("metric: ece", "metric: ece\n    bins: 0"),
    )
    result = pytester.runpytest("--robustness-json=out.json")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting bad.robustness.yaml*",
            "*bad.robustness.yaml:12, check 'calibrated', field 'bins': "
            "Input should be greater than or equal to 1 (got 0)*",
        ]
    )
    assert len(read_json(pytester)["results"]) == 2


def test_selection_options_work_as_for_ordinary_tests(pytester: pytest.Pytester) -> None:
    write_spec(pytester, ece_max=0.001)
    pytester.runpytest("-k", "log").assert_outcomes(passed=1)
    pytester.runpytest("-m", "slow").assert_outcomes(passed=1)
    pytester.runpytest("-m", "robustness and not slow").assert_outcomes(failed=1)
    pytester.runpytest("-x").assert_outcomes(failed=1)
    pytester.runpytest()  # records the failure in the cache for --lf
    result = pytester.runpytest("--lf", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rerun previous 1 failure*", "*::calibrated FAILED*"])


def test_yaml_named_on_the_command_line_is_collected(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", plain=SPEC.format(ece_max=0.1))
    pytester.runpytest().assert_outcomes()  # a plain .yaml in a folder is not a spec
    pytester.runpytest("plain.yaml").assert_outcomes(passed=2)


def test_model_and_data_load_once_per_spec_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=COUNTING_FACTORIES)
    pytester.makefile(
        ".robustness.yaml",
        counted=textwrap.dedent("""\
        model: {factory: factories.py:model}
        data: {factory: factories.py:data}
        checks:
          - {name: a, type: calibration}
          - {name: b, type: calibration, metric: brier}
          - {name: c, type: calibration, metric: nll}
        """),
    )
    pytester.runpytest().assert_outcomes(passed=3)
    assert (pytester.path / "calls.log").read_text().split() == ["model", "data"]


def test_check_that_raises_is_an_error_and_the_others_still_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=COUNTING_FACTORIES)
    pytester.makefile(
        ".robustness.yaml",
        broken=textwrap.dedent("""\
        model: {factory: factories.py:nan_model}
        data: {factory: factories.py:data}
        checks:
          - {name: a, type: calibration}
        """),
    )
    write_spec(pytester)
    result = pytester.runpytest("--robustness-json=out.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*calibration check 'a' could not run: ModelOutputError: the model returned NaN or "
            "infinite logits for 1 of 100 inputs (first at index 5)*",
        ]
    )
    records = {r["check"]: r for r in read_json(pytester)["results"]}
    assert records["a"]["outcome"] == "error" and records["a"]["passed"] is False
    assert "NaN" in records["a"]["error"] and records["a"]["value"] is None
    assert records["calibrated"]["outcome"] == "passed"


def test_load_error_is_reported_for_each_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(bad_factory="def model():\n    raise RuntimeError('no GPU memory')\n")
    pytester.makefile(
        ".robustness.yaml",
        spec=textwrap.dedent("""\
        model: {factory: bad_factory.py:model}
        data: {factory: robustness_checks.demo.digits:test_set}
        checks:
          - {name: a, type: calibration}
          - {name: b, type: calibration}
        """),
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*could not run: LoadError: model factory 'bad_factory.py:model' "
            "raised RuntimeError('no GPU memory')*"
        ]
    )


def test_seed_and_device_options_override_the_spec(pytester: pytest.Pytester) -> None:
    write_spec(pytester)
    pytester.runpytest("--robustness-json=a.json").assert_outcomes(passed=2)
    pytester.runpytest("--robustness-json=b.json", "--robustness-seed=0").assert_outcomes(passed=2)
    pytester.runpytest("--robustness-json=c.json", "--robustness-seed=7").assert_outcomes(passed=2)
    ci = [read_json(pytester, f"{n}.json")["results"][0]["ci"] for n in "abc"]
    assert ci[0] == ci[1] != ci[2]
    cuda_spec = SPEC.format(ece_max=0.1).replace("seed: 0", "device: cuda")
    pytester.makefile(".robustness.yaml", digits=cuda_spec)
    pytester.runpytest("--robustness-device=cpu").assert_outcomes(passed=2)


def test_robustness_fixture_records_results(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_model="""
        import robustness_checks
        from robustness_checks.demo.digits import test_set
        from robustness_checks.demo.model import digits_cnn

        def test_calibrated(robustness):
            result = robustness.calibration(digits_cnn(pretrained=True), test_set(limit=100),
                                            max=0.2, name="fixture-ece")
            assert result, result.message

        def test_recorded(robustness):
            result = robustness_checks.calibration(digits_cnn(pretrained=True),
                                                   test_set(limit=100), metric="nll", max=1e-4)
            robustness.record(result)
            assert result, result.message
        """
    )
    result = pytester.runpytest("--robustness-json=out.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: nll = * exceeds max 0.0001 on 100 examples*"])
    records = read_json(pytester)["results"]
    assert [r["check"] for r in records] == ["fixture-ece", "calibration"]
    assert records[0]["nodeid"] == "test_model.py::test_calibrated"
    assert records[1]["passed"] is False
    testcase = ET.parse(pytester.path / "junit.xml").find(".//testcase[@name='test_calibrated']")
    assert {p.get("name") for p in testcase.iter("property")} >= {"metric", "value", "ci_low"}


def test_xdist_gives_the_same_results_as_a_serial_run(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    write_spec(pytester, "one")
    write_spec(pytester, "two", ece_max=0.001)
    serial = pytester.runpytest_subprocess("--robustness-json=serial.json", "-p", "no:randomly")
    serial.assert_outcomes(passed=3, failed=1)
    parallel = pytester.runpytest_subprocess(
        "-n", "2", "--robustness-json=parallel.json", "--robustness-html=parallel.html"
    )
    parallel.assert_outcomes(passed=3, failed=1)

    timings = {"seconds", "examples_per_second", "evaluations_per_second"}

    def comparable(name: str) -> list[dict]:
        return [
            {k: v for k, v in r.items() if k not in timings}
            for r in read_json(pytester, name)["results"]
        ]

    assert comparable("serial.json") == comparable("parallel.json")
    assert len(comparable("parallel.json")) == 4
    html = (pytester.path / "parallel.html").read_text()
    assert html.count('<section class="check"') == 4
    for record in comparable("parallel.json"):
        assert html.count(f"{record['nodeid']}</a>") == 1
