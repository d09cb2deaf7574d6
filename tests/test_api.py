"""The Python API: check functions on a model and data, result objects, the schema command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import robustness_checks
from robustness_checks.demo.digits import test_set as digits_test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.metrics.calibration import expected_calibration_error


class FixedLogits(torch.nn.Module):
    """Returns the logits stored for each input index (inputs carry their index)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].long()]


def test_calibration_matches_the_metric_on_known_probabilities() -> None:
    probabilities = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 1, 1, 1])
    x = torch.arange(4, dtype=torch.float32)[:, None]
    result = robustness_checks.calibration(
        FixedLogits(probabilities.log()), (x, labels), bins=10, max=0.5, bounds=None
    )
    confidence, predicted = probabilities.max(dim=1)
    expected = expected_calibration_error(confidence.numpy(), (predicted == labels).numpy(), 10)
    assert result.value == pytest.approx(float(expected), abs=1e-6)
    assert result.statistic == result.value
    assert result.examples == 4 and result.evaluations == 4
    assert result.passed and bool(result)


def test_result_message_and_interval_on_the_demo_model() -> None:
    model = digits_cnn(pretrained=True)
    result = robustness_checks.calibration(model, digits_test_set(), metric="ece", max=0.001)
    assert not result
    interval = result.confidence_interval()
    assert interval.low <= result.value <= interval.high
    assert result.message.startswith(f"ece = {result.value:.3g} (95% CI ")
    assert result.message.endswith("exceeds max 0.001 on 540 examples")
    with pytest.raises(AssertionError, match=r"exceeds max 0\.001"):
        assert result, result.message
    assert "exceeds max" in repr(result)


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    model = digits_cnn(pretrained=True)
    data = digits_test_set(limit=150)
    first = robustness_checks.calibration(model, data, seed=3)
    again = robustness_checks.calibration(model, data, seed=3)
    other = robustness_checks.calibration(model, data, seed=4)
    assert first.ci == again.ci != other.ci
    assert first.value == other.value


@pytest.mark.parametrize("form", ["numpy", "dataset", "loader"])
def test_data_forms_give_the_same_result(form: str) -> None:
    model = digits_cnn(pretrained=True)
    x, y = digits_test_set(limit=100)
    reference = robustness_checks.calibration(model, (x, y), metric="nll", bootstrap=0)
    data = {
        "numpy": (x.numpy(), y.numpy()),
        "dataset": TensorDataset(x, y),
        "loader": DataLoader(TensorDataset(x, y), batch_size=7),
    }[form]
    result = robustness_checks.calibration(model, data, metric="nll", bootstrap=0, batch_size=16)
    assert result.value == pytest.approx(reference.value, rel=1e-6)
    assert result.ci is None


def test_model_is_left_in_eval_mode() -> None:
    model = digits_cnn(pretrained=True).train()
    robustness_checks.calibration(model, digits_test_set(limit=20), bootstrap=0)
    assert not model.training


def test_bad_parameters_are_refused_with_the_field() -> None:
    model = digits_cnn()
    with pytest.raises(ValueError, match="bins"):
        robustness_checks.calibration(model, digits_test_set(limit=5), bins=0)
    with pytest.raises(robustness_checks.SpecError, match="known types: adversarial, calibration"):
        robustness_checks.run_check("no-such-type", model, digits_test_set(limit=5))


def test_every_metric_runs_and_is_in_range() -> None:
    model = digits_cnn(pretrained=True)
    data = digits_test_set(limit=200)
    values = {
        metric: robustness_checks.calibration(model, data, metric=metric, bootstrap=50).value
        for metric in ("ece", "ace", "mce", "classwise_ece", "brier", "nll")
    }
    assert all(0 <= values[m] <= 1 for m in ("ece", "ace", "mce", "classwise_ece"))
    assert values["mce"] >= values["ece"]
    logits = model(data[0])
    nll = torch.nn.functional.cross_entropy(logits, data[1]).item()
    assert values["nll"] == pytest.approx(nll, rel=1e-5)
    probabilities = logits.softmax(dim=1)
    brier = ((probabilities - torch.eye(10)[data[1]]) ** 2).sum(dim=1).mean().item()
    assert values["brier"] == pytest.approx(brier, rel=1e-5)


def test_schema_command_prints_the_json_schema() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "robustness_checks", "schema"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    schema = json.loads(output)
    assert set(schema["required"]) == {"model", "data", "checks"}
    assert schema["properties"]["checks"]["items"]["discriminator"]["propertyName"] == "type"
    calibration = schema["$defs"]["CalibrationCheck"]
    assert calibration["properties"]["bins"]["minimum"] == 1
    assert calibration["additionalProperties"] is False


def test_validate_command_reports_problems(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {factory: a.b:c}\n")
    done = subprocess.run(
        [sys.executable, "-m", "robustness_checks", "validate", str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert f"{bad}:1, field 'data': required field is missing" in done.stderr


def test_non_finite_logits_are_an_error_naming_the_input() -> None:
    logits = torch.zeros(6, 3)
    logits[4, 1] = float("inf")
    x = torch.arange(6, dtype=torch.float32)[:, None]
    with pytest.raises(
        robustness_checks.ModelOutputError, match=r"1 of 6 inputs \(first at index 4\)"
    ):
        robustness_checks.calibration(FixedLogits(logits), (x, torch.zeros(6, dtype=torch.long)))


def test_results_serialise_without_nan() -> None:
    result = robustness_checks.CheckResult(
        check="c", type="calibration", metric="ece", value=float("nan")
    )
    assert json.dumps(result.to_dict(), allow_nan=False)
    assert np.isnan(result.value)


def test_limit_runs_a_check_on_the_first_examples_only() -> None:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    model = digits_cnn(pretrained=True)
    whole = robustness_checks.calibration(model, test_set(100), bootstrap=10)
    part = robustness_checks.calibration(model, test_set(100), bootstrap=10, limit=40)
    first = robustness_checks.calibration(model, test_set(40), bootstrap=10)
    assert (whole.examples, part.examples, part.evaluations) == (100, 40, 40)
    assert part.value == first.value and part.ci == first.ci
    assert part.settings["check"]["limit"] == 40
    assert "limit" not in whole.settings["check"]  # unset: fingerprints as before the field
