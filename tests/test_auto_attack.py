"""`method: auto`, the new YAML attack fields and the gradient masking verdict, on the demo CNN."""

from __future__ import annotations

import json
import textwrap
import warnings
from collections.abc import Iterator
from functools import cache

import pytest
import torch
from torch import Tensor, nn

import robustness_checks
from robustness_checks.attacks import run_attack
from robustness_checks.attacks.auto import auto_stages, stage_generator
from robustness_checks.checks.common.attack_spec import AttackSpec
from robustness_checks.checks.common.masking_probe import PROBE_STEPS, plan_probe
from robustness_checks.errors import RobustnessWarning
from robustness_checks.execution.random_streams import ExampleStream

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def models() -> dict[str, nn.Module]:
    from robustness_checks.demo.masked import quantised_cnn, scaled_logits_cnn
    from robustness_checks.demo.model import digits_cnn

    return {
        "honest": digits_cnn(pretrained=True),
        "scaled": scaled_logits_cnn(scale=1000),
        "quantised": quantised_cnn(levels=4),
    }


def data(limit: int = 150) -> tuple[Tensor, Tensor]:
    from robustness_checks.demo.digits import test_set

    return test_set(limit)


def robust_accuracy(model: nn.Module, eps: float, limit: int = 150, **options: object) -> float:
    x, y = data(limit)
    stream = ExampleStream(7, torch.arange(len(y)))
    return run_attack(model, x, y, eps=eps, generator=stream, **options).accuracy(y).item()


# --- known answers: a scaled copy has the unscaled model's robust accuracy ------------------------


def test_scaled_logits_get_the_unscaled_robust_accuracy_under_auto_and_apgd_dlr() -> None:
    honest, scaled = models()["honest"], models()["scaled"]
    # `fast` at eps 0.1 (about half the examples robust): standard costs ~5x more here.
    for options in ({"method": "auto", "version": "fast"}, {"method": "apgd", "loss": "dlr"}):
        options = {"steps": 100, **options} if options["method"] == "apgd" else options
        truth = robust_accuracy(honest, 0.1, **options)
        assert 0.3 < truth < 0.8
        assert robust_accuracy(scaled, 0.1, **options) == pytest.approx(truth, abs=0.01)
    # `standard` at eps 0.2, where few examples reach its 5000-query Square stage.
    truth = robust_accuracy(honest, 0.2, limit=100, method="auto")
    assert robust_accuracy(scaled, 0.2, limit=100, method="auto") == pytest.approx(truth, abs=0.01)
    assert truth <= 0.02
    # While PGD on the scaled copy sees saturated softmax gradients and finds almost nothing.
    assert robust_accuracy(scaled, 0.2, method="pgd", steps=20) > 0.9


def test_auto_is_never_weaker_than_any_stage_alone() -> None:
    model = models()["honest"]
    x, y = data(150)
    eps = [0.05, 0.1, 0.15]
    stream = ExampleStream(3, torch.arange(len(y)))
    auto = run_attack(model, x, y, method="auto", version="fast", eps=eps, generator=stream)
    fooled = auto.predictions != y
    everything = torch.arange(len(y))
    stage_passes = 0
    for stage in auto_stages("fast", 10):
        alone = run_attack(
            model,
            x,
            y,
            eps=eps,
            early_stop=True,
            generator=stage_generator(stream, stage.name, everything),
            **stage.options,
        )
        alone_fooled = (alone.predictions != y) | (alone.clean_predictions != y)
        assert not (alone_fooled & ~fooled).any(), stage.name  # every example it fools, auto does
        assert (auto.accuracy(y) <= alone.accuracy(y)).all(), stage.name
    # Stage bookkeeping: what the stages broke plus the clean errors is what auto fooled.
    clean_errors = int((auto.clean_predictions != y).sum())
    broken = torch.stack([s.broken for s in auto.stages]).sum(dim=0)
    assert (broken + clean_errors == fooled.sum(dim=1)).all()
    stage_passes = sum(s.forward_passes for s in auto.stages)
    assert auto.forward_passes == len(y) + stage_passes
    assert [s.name for s in auto.stages] == ["APGD-CE", "APGD-T", "Square"]
    assert auto.adversarial.shape == (3, len(y), 1, 8, 8)
    assert (auto.perturbation_norms(x) <= torch.tensor(eps).view(-1, 1) + 1e-6).all()


class Counting(nn.Module):
    """The model, counting the inputs it is run on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.inputs = model, 0

    def forward(self, x: Tensor) -> Tensor:
        self.inputs += x.shape[0]
        return self.model(x)


def test_dead_gradients_cost_one_pass_in_apgd_ce_and_change_nothing() -> None:
    # On saturated logits the CE gradient is exactly zero at almost every start point: APGD-CE
    # alone spends all its steps there without moving; in auto those rows stop after one pass.
    model = Counting(models()["scaled"])
    x, y = data(100)
    stream = ExampleStream(5, torch.arange(len(y)))
    auto = run_attack(model, x, y, method="auto", version="fast", eps=0.2, generator=stream)
    assert auto.forward_passes == model.inputs  # every input the model saw, counted once
    assert model.inputs == len(y) + sum(s.forward_passes for s in auto.stages)
    ce = auto_stages("fast", 10)[0]
    everything = torch.arange(len(y))
    alone = run_attack(
        model,
        x,
        y,
        eps=0.2,
        early_stop=True,
        generator=stage_generator(stream, ce.name, everything),
        **ce.options,
    )
    correct = alone.clean_predictions == y
    assert int(auto.stages[0].broken) == int((correct & (alone.predictions[0] != y)).sum())
    assert int(auto.zero_gradients) > 0.9 * auto.stages[0].forward_passes
    assert auto.stages[0].forward_passes < alone.forward_passes / 20
    assert auto.accuracy(y).item() <= 0.02  # the targeted DLR stage breaks them


def test_fast_and_standard_are_close_to_full_at_a_fraction_of_the_cost() -> None:
    model = models()["honest"]
    x, y = data(60)
    stream = ExampleStream(1, torch.arange(len(y)))
    full = run_attack(model, x, y, method="auto", version="full", eps=0.1, generator=stream)
    for version in ("fast", "standard"):
        cheaper = run_attack(model, x, y, method="auto", version=version, eps=0.1, generator=stream)
        assert cheaper.accuracy(y).item() == pytest.approx(full.accuracy(y).item(), abs=0.02)
        assert cheaper.forward_passes < full.forward_passes / 4


# --- the attack block ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "label", "steps"),
    [
        ({"method": "pgd"}, "PGD-Linf", 10),
        ({"method": "pgd", "loss": "dlr", "norm": "2"}, "PGD-DLR-L2", 10),
        ({"method": "apgd"}, "APGD-CE-Linf", 100),
        ({"method": "apgd", "loss": "dlr"}, "APGD-DLR-Linf", 100),
        ({"method": "apgd", "loss": "dlr", "targeted": 9, "steps": 50}, "APGD-T-Linf", 50),
        ({"method": "square", "queries": 100}, "Square-Linf", None),
        ({"method": "auto"}, "AutoAttack-standard-Linf", None),
        ({"method": "auto", "version": "fast", "norm": "l2"}, "AutoAttack-fast-L2", None),
    ],
)
def test_labels_and_default_steps(fields: dict, label: str, steps: int | None) -> None:
    spec = AttackSpec(eps=0.1, **fields)
    assert spec.label() == label
    assert spec.resolved_steps == steps
    options = spec.run_options()
    assert options["method"] == fields["method"]
    if steps is not None:
        assert options["steps"] == steps
    if fields["method"] == "auto":
        assert options == {"method": "auto", "norm": spec.norm, "version": spec.version}


# --- gradient masking changes the verdict --------------------------------------------------------


def masked_check(model: str, **options: object) -> robustness_checks.CheckResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessWarning)
        return robustness_checks.adversarial(
            models()[model], data(150), eps=0.2, min_accuracy=0.5, **options
        )


def test_scaled_model_fails_on_masking_evidence_with_pgd() -> None:
    result = masked_check("scaled", method="pgd", steps=20)
    assert not result and result.outcome == "failed"
    assert result.value > 0.9  # the measured (untrustworthy) number is above the bound
    message = result.message
    assert message.startswith("gradient masking suspected: ")
    assert "Square broke" in message and "examples that PGD-Linf left robust" in message
    assert "is not trustworthy: use method: auto" in message
    assert "meets min_accuracy 0.5 on 150 examples" in message
    probe = result.details["masking_probe"]
    # PGD-20 on 150 examples: 3,300 passes, a budget of 825: 6 examples at 109 queries.
    assert result.details["forward_passes"] == 150 * 22 and probe["budget"] == 825
    assert plan_probe(150, 825).examples == 6 and probe["queries"] == 109
    assert probe["steps"] == PROBE_STEPS and probe["suspected"]
    assert probe["broken"] >= 3 and probe["stopped"].startswith("settled: enough")
    assert 0 < probe["evaluations"] <= probe["budget"]
    assert result.evaluations == result.details["forward_passes"] + probe["evaluations"]
    assert len(result.details["gradient_masking"]["evidence"]) == 2  # dead gradients too


def test_warn_keeps_the_verdict_and_warns() -> None:
    with pytest.warns(RobustnessWarning, match="gradient masking suspected: the input gradient"):
        result = robustness_checks.adversarial(
            models()["scaled"],
            data(150),
            method="pgd",
            eps=0.2,
            steps=20,
            min_accuracy=0.5,
            gradient_masking="warn",
        )
    assert result and result.outcome == "passed"
    # warn never changes the verdict, so the Square probe does not run: dead gradients warn.
    assert result.details["masking_probe"]["evaluations"] == 0
    assert result.details["masking_probe"]["stopped"].startswith("not run: gradient_masking: warn")
    assert result.evaluations == result.details["forward_passes"]
    off = robustness_checks.adversarial(
        models()["scaled"], data(150), eps=0.2, steps=20, min_accuracy=0.5, gradient_masking="off"
    )
    assert off and off.details["gradient_masking"] == {"action": "off", "evidence": []}


def test_input_quantising_model_is_flagged() -> None:
    result = masked_check("quantised", method="pgd", steps=20)
    assert not result and "gradient masking suspected" in result.message
    assert result.details["masking_probe"]["suspected"]


def test_probe_does_not_depend_on_the_batch_size() -> None:
    first = masked_check("scaled", method="fgsm", batch_size=32, probe_budget=20.0)
    second = masked_check("scaled", method="fgsm", batch_size=256, probe_budget=20.0)
    assert first.details["masking_probe"]["probed"] > 0
    assert first.details["masking_probe"] == second.details["masking_probe"]


@pytest.mark.parametrize(
    ("options", "bound"),
    [
        ({"method": "pgd", "steps": 20, "eps": [0.05, 0.1]}, {"max_drop": [0.2, 0.5]}),
        ({"method": "fgsm", "eps": 0.1}, {"max_drop": 0.4}),
        ({"method": "apgd", "loss": "dlr", "steps": 25, "eps": 0.15}, {"min_accuracy": 0.0}),
    ],
)
def test_honest_model_raises_no_masking_evidence(options: dict, bound: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RobustnessWarning)
        result = robustness_checks.adversarial(models()["honest"], data(200), **options, **bound)
    assert result, result.message
    assert result.details["gradient_masking"]["evidence"] == []
    probe = result.details["masking_probe"]
    assert probe["evaluations"] <= probe["budget"] == result.details["forward_passes"] // 4
    # FGSM's 3 passes per example leave too small a budget; the multi-step attacks probe.
    assert probe["probed"] > 0 or probe["stopped"].startswith("not run: the budget")


def test_auto_check_reports_what_each_stage_broke() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessWarning)  # the CE stage's dead gradients
        result = robustness_checks.adversarial(
            models()["scaled"], data(100), method="auto", version="fast", eps=[0.1, 0.2]
        )
    rows = result.details["broken_by"]
    assert [row["eps"] for row in rows] == [0.1, 0.2]
    assert set(rows[0]) == {"eps", "APGD-CE", "APGD-T", "Square"}
    # Scale invariance: the targeted DLR stage does the work on saturated logits.
    assert rows[1]["APGD-T"] > rows[1]["APGD-CE"]
    stages = result.details["stages"]
    assert [s["name"] for s in stages] == ["APGD-CE", "APGD-T", "Square"]
    assert sum(s["evaluations"] for s in stages) + 100 == result.evaluations
    assert result.details["attack"]["label"] == "AutoAttack-fast-Linf"
    assert "masking_probe" not in result.details


# --- YAML, end to end ----------------------------------------------------------------------------

SPEC = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
  kwargs: {pretrained: true}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {limit: 60}
checks:
  - name: autoattack
    type: adversarial
    attack: {method: auto, version: fast, norm: inf, eps: [0.05, 0.1]}
    max_drop: [0.3, 0.7]
  - name: apgd-t
    type: adversarial
    attack: {method: apgd, loss: dlr, targeted: 3, steps: 20, eps: 0.1}
    max_drop: 0.7
  - name: square
    type: adversarial
    attack: {method: square, queries: 200, eps: 0.1}
    max_drop: 0.7
"""

MASKED = """\
model:
  factory: robustness_checks.demo.masked:scaled_logits_cnn
  kwargs: {scale: 1000}
data:
  factory: robustness_checks.demo.digits:test_set
  kwargs: {limit: 60}
checks:
  - name: pgd-on-masked
    type: adversarial
    attack: {method: pgd, eps: 0.2, steps: 10}
    min_accuracy: 0.5
"""


def test_new_methods_run_from_yaml(pytester: pytest.Pytester) -> None:
    pytester.makefile(".robustness.yaml", attacks=SPEC)
    result = pytester.runpytest("-p", "no:cacheprovider", "--robustness-json=out.json")
    result.assert_outcomes(passed=3)
    results = json.loads((pytester.path / "out.json").read_text())["results"]
    auto = next(r for r in results if r["check"] == "autoattack")
    assert [row["eps"] for row in auto["details"]["broken_by"]] == [0.05, 0.1]
    assert auto["details"]["attack"]["label"] == "AutoAttack-fast-Linf"


def test_masked_model_spec_fails_with_the_masking_message(pytester: pytest.Pytester) -> None:
    pytester.makefile(".robustness.yaml", masked=MASKED)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    # PGD-10 on 60 examples leaves the probe 180 passes, too few: dead gradients decide.
    result.stdout.fnmatch_lines(["*gradient masking suspected: the input gradient*method: auto*"])


def test_bad_combinations_name_the_field(pytester: pytest.Pytester) -> None:
    bad = MASKED.replace(
        "{method: pgd, eps: 0.2, steps: 10}", "{method: square, eps: 0.2, steps: 10}"
    )
    pytester.makefile(".robustness.yaml", bad=textwrap.dedent(bad))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*steps cannot be used with method square*"])
