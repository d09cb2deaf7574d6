"""Each kind of bad spec is refused with a message naming file, line, check and field."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest
import torch

from robustness_checks.checks.registry import CHECK_TYPES
from robustness_checks.errors import SpecError
from robustness_checks.spec.parse import load_spec

GOOD_TOP = """\
model:
  factory: robustness_checks.demo.model:digits_cnn
data:
  factory: robustness_checks.demo.digits:test_set
"""


def refuse(tmp_path: Path, text: str, name: str = "bad.robustness.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = caught.value.render()
    assert str(path) in message
    return message


def test_malformed_yaml(tmp_path: Path) -> None:
    message = refuse(tmp_path, GOOD_TOP + "checks: [\n  - name: x\n")
    assert "malformed YAML" in message
    assert ":6:" in message or ":7:" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "the file is empty" in refuse(tmp_path, "")
    assert "the file is empty" in refuse(tmp_path, "# only a comment\n", "c.robustness.yaml")


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "must be a mapping" in refuse(tmp_path, "- 1\n- 2\n")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = refuse(tmp_path, GOOD_TOP + "seeed: 3\nchecks:\n  - {name: a, type: calibration}\n")
    assert ":5, field 'seeed': unknown key 'seeed' (did you mean 'seed'?)" in message
    allowed = (
        "model, data, bounds, device, seed, confidence, decision, timeout, precision, "
        "channels_last, checks"
    )
    assert f"allowed keys: {allowed}" in message


def test_unknown_check_type_lists_known_types(tmp_path: Path) -> None:
    message = refuse(tmp_path, GOOD_TOP + "checks:\n  - name: cal\n    type: calibraton\n")
    assert ":7, check 'cal', field 'type': unknown check type 'calibraton'" in message
    assert "did you mean 'calibration'?" in message
    assert "known types: " + ", ".join(sorted(CHECK_TYPES)) in message


def test_missing_check_type(tmp_path: Path) -> None:
    message = refuse(tmp_path, GOOD_TOP + "checks:\n  - name: cal\n    max: 0.1\n")
    assert "check 'cal', field 'type': check has no 'type'; known types:" in message


def test_wrong_type_of_field(tmp_path: Path) -> None:
    message = refuse(
        tmp_path, GOOD_TOP + "checks:\n  - name: cal\n    type: calibration\n    bins: many\n"
    )
    assert ":8, check 'cal', field 'bins': Input should be a valid integer" in message
    assert "(got 'many')" in message


def test_bins_below_one(tmp_path: Path) -> None:
    message = refuse(
        tmp_path, GOOD_TOP + "checks:\n  - name: cal\n    type: calibration\n    bins: 0\n"
    )
    assert ":8, check 'cal', field 'bins': Input should be greater than or equal to 1" in message


def test_probability_bound_outside_unit_interval(tmp_path: Path) -> None:
    message = refuse(
        tmp_path, GOOD_TOP + "checks:\n  - name: cal\n    type: calibration\n    max: 1.5\n"
    )
    assert "check 'cal'" in message and "max 1.5 is outside [0, 1]" in message
    message = refuse(
        tmp_path,
        GOOD_TOP + "confidence: 1.2\nchecks:\n  - {name: a, type: calibration}\n",
        "conf.robustness.yaml",
    )
    assert ":5, field 'confidence': Input should be less than 1 (got 1.2)" in message


def test_duplicate_check_names(tmp_path: Path) -> None:
    message = refuse(
        tmp_path,
        GOOD_TOP + "checks:\n  - name: cal\n    type: calibration\n"
        "  - name: cal\n    type: calibration\n    metric: nll\n",
    )
    assert ":8, check 'cal', field 'name': duplicate check name 'cal' (first used on line 6)" in (
        message
    )


def test_missing_weights_file(tmp_path: Path) -> None:
    text = GOOD_TOP.replace("digits_cnn\n", "digits_cnn\n  weights: nowhere/model.pt\n", 1)
    message = refuse(tmp_path, text + "checks:\n  - {name: a, type: calibration}\n")
    assert ":3, field 'model.weights': weights file" in message
    assert "nowhere/model.pt does not exist" in message


def test_factory_that_cannot_be_imported(tmp_path: Path) -> None:
    text = GOOD_TOP.replace("robustness_checks.demo.model:", "no_such_package.models:")
    message = refuse(tmp_path, text + "checks:\n  - {name: a, type: calibration}\n")
    assert ":2, field 'model.factory': factory 'no_such_package.models:digits_cnn'" in message
    assert "cannot import module 'no_such_package.models'" in message


def test_factory_without_the_function(tmp_path: Path) -> None:
    text = GOOD_TOP.replace(":digits_cnn", ":no_such_function")
    message = refuse(tmp_path, text + "checks:\n  - {name: a, type: calibration}\n")
    assert "has no 'no_such_function'" in message


@pytest.mark.parametrize("missing", ["x", "y"])
def test_data_file_without_x_or_y(tmp_path: Path, missing: str) -> None:
    content = {"x": torch.zeros(2, 3), "y": torch.zeros(2, dtype=torch.long)}
    del content[missing]
    torch.save(content, tmp_path / "data.pt")
    text = GOOD_TOP.replace("factory: robustness_checks.demo.digits:test_set", "tensors: data.pt")
    message = refuse(tmp_path, text + "checks:\n  - {name: a, type: calibration}\n")
    assert f":4, field 'data.tensors': data file {tmp_path / 'data.pt'} has no {missing}" in message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_data_file_that_is_a_code_running_pickle(tmp_path: Path) -> None:
    (tmp_path / "data.pt").write_bytes(pickle.dumps({"x": object(), "y": [1]}))
    text = GOOD_TOP.replace("factory: robustness_checks.demo.digits:test_set", "tensors: data.pt")
    message = refuse(tmp_path, text + "checks:\n  - {name: a, type: calibration}\n")
    assert "field 'data.tensors': cannot read data file" in message


def test_two_sources_for_one_model(tmp_path: Path) -> None:
    text = GOOD_TOP.replace("digits_cnn\n", "digits_cnn\n  torchvision: resnet18\n", 1)
    message = refuse(tmp_path, text + "checks:\n  - {name: a, type: calibration}\n")
    assert "field 'model': a model needs exactly one of factory, torchscript, torchvision" in (
        message
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = refuse(
        tmp_path,
        GOOD_TOP + "device: gpu\nchecks:\n  - name: a\n    type: "
        "calibration\n    bins: 0\n  - name: b\n    type: nope\n",
    )
    assert "device 'gpu' is not one of auto, cpu, cuda, cuda:N, mps" in message
    assert "check 'a', field 'bins'" in message
    assert "check 'b', field 'type'" in message


def test_good_spec_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "good.robustness.yaml"
    path.write_text(GOOD_TOP + "checks:\n  - {name: a, type: calibration, max: 0.1}\n")
    document = load_spec(path)
    assert document.spec.checks[0].name == "a"
    assert document.spec.bounds == (0.0, 1.0)
    assert document.lines.line(("checks", 0)) == 6
