"""Gates that end green in ways nobody named: each case found from outside is a regression test.

A saved baseline, then a model whose class-3 logit got +10: its accuracy under attack falls and
the metric that decides the check switches from accuracy_drop to adversarial_accuracy.
"""

from __future__ import annotations

import json

import pytest

from robustness_checks.gating.baseline import parse_rule
from robustness_checks.gating.compare import Comparator

pytest_plugins = ["pytester"]

FACTORIES = """\
import torch
from robustness_checks.demo.model import digits_cnn


class Biased(torch.nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.net = digits_cnn(pretrained=True)
        self.register_buffer("bias", torch.tensor(float(bias)))

    def forward(self, x):
        logits = self.net(x).clone()
        logits[:, 3] += self.bias
        return logits


def model(bias=0.0):
    return Biased(bias)
"""

SPEC = """\
model: {{factory: ../factories.py:model, kwargs: {{bias: {bias}}}}}
data: {{factory: robustness_checks.demo.digits:test_set, kwargs: {{limit: {limit}}}}}
seed: {seed}
checks:
  - {{name: calibrated, type: calibration, max: 0.5, bootstrap: 50}}
  - name: robust
    type: adversarial
    attack: {{method: uniform, eps: 0.4, restarts: 3}}
    min_accuracy: 0.3
    max_drop: 0.5
"""


def write(pytester: pytest.Pytester, bias: float = 0.0, limit: int = 150, seed: int = 0) -> None:
    pytester.makepyfile(factories=FACTORIES)
    (pytester.path / "specs").mkdir(exist_ok=True)
    spec = SPEC.format(bias=bias, limit=limit, seed=seed)
    (pytester.path / "specs" / "model.robustness.yaml").write_text(spec)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "specs", *args)


def results(pytester: pytest.Pytester, name: str) -> dict[str, dict]:
    document = json.loads((pytester.path / name).read_text())
    return {record["check"]: record for record in document["results"]}


@pytest.fixture
def switched(pytester: pytest.Pytester) -> tuple[dict, dict]:
    """The baseline's and the biased model's `robust` records: the deciding metric switched."""
    write(pytester)
    run(pytester, "--robustness-save=base", "--robustness-json=base.json").assert_outcomes(passed=2)
    write(pytester, bias=10.0)
    run(pytester, "--robustness-json=now.json").assert_outcomes(passed=2)
    before, now = results(pytester, "base.json")["robust"], results(pytester, "now.json")["robust"]
    assert (before["metric"], now["metric"]) == ("accuracy_drop", "adversarial_accuracy")
    return before, now


def judge(before: dict, now: dict, rule: str, strict: bool = False) -> list[str]:
    document = {"baseline": "base", "results": [before]}
    return Comparator(document, [parse_rule(rule)], strict).judge(now).regressions


@pytest.mark.parametrize(
    "rule", ["adversarial:+0.02", "*:+0.02", "robust:significant", "adversarial_accuracy:+0.02"]
)
@pytest.mark.parametrize("strict", [False, True])
def test_a_switch_of_the_deciding_metric_is_still_gated(
    switched: tuple[dict, dict], rule: str, strict: bool
) -> None:
    before, now = switched
    found = judge(before, now, rule, strict)
    assert any(text.startswith("adversarial_accuracy at eps=0.4") for text in found)


def test_each_rule_applies_to_its_own_metric(switched: tuple[dict, dict]) -> None:
    before, now = switched
    drop_before = before["details"]["per_eps"][0]["accuracy_drop"]
    drop_now = now["details"]["per_eps"][0]["accuracy_drop"]
    found = judge(before, now, "accuracy_drop:+0.0")
    # The drop is compared as a drop, never against the other metric.
    assert bool(found) == (drop_now > drop_before)
    assert all(text.startswith("accuracy_drop at eps=0.4") for text in found)
    # With max_drop deciding in the baseline, a rule on adversarial accuracy still gates it.
    assert judge(before, now, "adversarial_accuracy:+0.02")


def test_the_plugin_gates_it_and_shows_deltas_only_between_equal_metrics(
    pytester: pytest.Pytester, switched: tuple[dict, dict]
) -> None:
    result = run(
        pytester, "--robustness-compare=base", "--robustness-compare-fail=adversarial:+0.02"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*robust*adversarial_accuracy*(accuracy_drop)*",
            "regression: specs/*::robust: adversarial_accuracy at eps=0.4 fell*",
            "compared 2 of 2 checks against baseline 'base' (1 gated by a rule)",
        ]
    )


def test_a_data_change_is_not_comparable_and_fails_under_strict(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, limit=150)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    write(pytester, limit=149, bias=10.0)
    loose = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=*:+0.02")
    loose.assert_outcomes(passed=2)
    loose.stdout.fnmatch_lines(["*NotComparableWarning*the data differs*"])
    strict = run(
        pytester,
        "--robustness-compare=base",
        "--robustness-compare-fail=*:+0.02",
        "--robustness-compare-strict",
    )
    strict.assert_outcomes(failed=2)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_rule_that_matches_nothing_is_a_usage_error(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write(pytester)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    result = run(
        pytester,
        *workers,
        "-k",
        "not calibrated",
        "--robustness-compare=base",
        "--robustness-compare-fail=ece:+0.01",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "'ece:+0.01': the key 'ece' matches no check of this run" in text
    assert "INTERNALERROR" not in text


def _doctor(pytester: pytest.Pytester, change: object) -> None:
    saved = pytester.path / ".robustness" / "base.json"
    document = json.loads(saved.read_text())
    for record in document["results"]:
        change(record)  # type: ignore[operator]
    saved.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.update(value=None, outcome="error", error="boom"), "holds no value*boom"),
        (lambda r: r.pop("fingerprints"), "the baseline has no fingerprints"),
    ],
    ids=["errored-baseline", "no-fingerprints"],
)
def test_a_baseline_that_cannot_be_compared_is_not_counted_as_compared(
    pytester: pytest.Pytester, change: object, reason: str
) -> None:
    write(pytester)
    run(pytester, "--robustness-save=base").assert_outcomes(passed=2)
    _doctor(pytester, change)
    loose = run(pytester, "--robustness-compare=base", "--robustness-compare-fail=*:+0.0")
    loose.assert_outcomes(passed=2)
    loose.stdout.fnmatch_lines(
        [f"*NotComparableWarning*{reason}*", "compared 0 of 2 checks*", "warning: 2 checks are*"]
    )
    strict = run(
        pytester,
        "--robustness-compare=base",
        "--robustness-compare-fail=*:+0.0",
        "--robustness-compare-strict",
    )
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines([f"*not comparable with baseline 'base': *{reason}*"])


FIXTURE_TEST = """\
import os

from robustness_checks.demo.digits import test_set

from factories import model


def test_model(robustness):
    data = test_set(limit=150)
    bias = float(os.environ.get("BIAS", "0"))
    robustness.calibration(model(bias), data, name="calibrated", max=0.5, bootstrap=50)
    robustness.adversarial(
        model(bias), data, name="robust", method="uniform", eps=0.4, min_accuracy=0.0
    )
"""


def test_fixture_results_are_saved_and_compared_like_spec_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(factories=FACTORIES, test_fixture=FIXTURE_TEST)
    args = ("-p", "no:cacheprovider", "test_fixture.py")
    pytester.runpytest(*args, "--robustness-save=base").assert_outcomes(passed=1)
    same = pytester.runpytest(*args, "--robustness-compare=base", "--robustness-compare-fail=*:+0")
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines(["compared 2 of 2 checks against baseline 'base'*"])
    assert "did not run" not in same.stdout.str() and "not in baseline" not in same.stdout.str()
    monkeypatch.setenv("BIAS", "10")
    worse = pytester.runpytest(
        *args, "--robustness-compare=base", "--robustness-compare-fail=*:+0.02"
    )
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*robust: regression: adversarial_accuracy at eps=0.4 fell*"])


def test_the_command_line_decision_reaches_fixture_checks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=FACTORIES, test_fixture=FIXTURE_TEST)
    pytester.runpytest(
        "-p", "no:cacheprovider", "--robustness-decision=strict", "--robustness-json=r.json"
    ).assert_outcomes(passed=1)
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    assert [record["decision"] for record in records] == ["strict", "strict"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (["--robustness-seed=0"], []),  # the spec's seed is 3: 0 is a change, not "no option"
        (["-o", "robustness_decision=point"], ["-o", "robustness_decision=strict"]),
    ],
    ids=["seed-0", "ini-decision"],
)
def test_every_setting_in_force_is_in_the_fingerprint(
    pytester: pytest.Pytester, first: list[str], second: list[str]
) -> None:
    write(pytester, seed=3)
    run(pytester, "--robustness-save=base", *first).assert_outcomes(passed=2)
    result = run(pytester, "--robustness-compare=base", "--robustness-compare-strict", *second)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*not comparable*settings differ*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--robustness-timeout=0"], "--robustness-timeout: Input should be greater than 0"),
        (["--robustness-timeout=-5"], "--robustness-timeout: Input should be greater than 0"),
        (["--robustness-timeout=nan"], "--robustness-timeout: Input should be a finite number"),
        (["-o", "robustness_decision=strcit"], "ini option robustness_decision: Input should be"),
        (["--robustness-rounds=0"], "--robustness-rounds: must be at least 1"),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    write(pytester)
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_seed_of_zero_on_the_command_line_wins() -> None:
    from robustness_checks.settings import SettingsLayer, resolve

    settings = resolve([("command line", SettingsLayer(seed=0)), ("spec", SettingsLayer(seed=3))])
    assert settings.seed == 0 and settings.sources["seed"] == "command line"
