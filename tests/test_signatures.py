"""The Python API and the fixture are generated from the CheckType records and cannot drift."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

import robustness_checks
from robustness_checks import api
from robustness_checks.checks.registry import BUILTIN_MODULES, CHECK_TYPES
from robustness_checks.checks.signatures import (
    RUN_OPTIONS,
    field_default,
    flattened_fields,
    parameter_fields,
    stub_text,
)
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.plugin.fixture import Recorder

STUB = Path(api.__file__).with_suffix(".pyi")


@pytest.mark.parametrize("name", sorted(CHECK_TYPES))
def test_every_check_function_takes_exactly_its_fields_with_their_defaults(name: str) -> None:
    entry = CHECK_TYPES[name]
    parameters = inspect.signature(getattr(robustness_checks, name)).parameters
    expected = {**flattened_fields(entry), **parameter_fields(entry)}
    taken = set(parameters) - {"model", "data"} - set(RUN_OPTIONS)
    assert taken == set(expected) - set(RUN_OPTIONS)
    for field, info in expected.items():
        default = None if field == entry.flattened else field_default(info)
        assert parameters[field].default == default, field
    for option, (default, _) in RUN_OPTIONS.items():
        if option not in expected:
            assert parameters[option].default == default, option


def test_api_stub_is_in_sync_with_the_records() -> None:
    wanted = stub_text([CHECK_TYPES[name] for name in BUILTIN_MODULES])
    assert STUB.read_text() == wanted, (
        "robustness_checks/api.pyi is stale: regenerate it with "
        "`python -m robustness_checks.checks.signatures > robustness_checks/api.pyi`"
    )


def test_the_stub_is_valid_python_that_names_every_builtin_function() -> None:
    tree = compile(STUB.read_text(), str(STUB), "exec", flags=0x400)  # PyCF_ONLY_AST
    names = {node.name for node in tree.body if hasattr(node, "name")}
    assert names == {"run_check", *BUILTIN_MODULES}


@pytest.mark.parametrize("name", sorted(CHECK_TYPES))
def test_fixture_methods_take_the_library_functions_arguments(name: str) -> None:
    recorder = Recorder(item=None)  # type: ignore[arg-type]
    assert inspect.signature(getattr(recorder, name)) == inspect.signature(getattr(api, name))


def test_python_callers_get_the_yaml_messages_as_a_value_error() -> None:
    model, data = digits_cnn(pretrained=True), test_set(limit=20)
    with pytest.raises(ValueError, match=r"field 'metrc'.*did you mean 'metric'") as caught:
        robustness_checks.run_check("calibration", model, data, metrc="ece")
    assert isinstance(caught.value, robustness_checks.SpecError)
    with pytest.raises(robustness_checks.SpecError, match=r"field 'bins'.*greater than or equal"):
        robustness_checks.calibration(model, data, bins=0)
    with pytest.raises(ValueError, match=r"unknown check type 'calibraton' \(did you mean"):
        robustness_checks.run_check("calibraton", model, data)
    with pytest.raises(TypeError, match=r"calibration\(\): got an unexpected keyword"):
        robustness_checks.calibration(model, data, sigma=0.1)


def test_readme_style_attack_keywords_fill_the_attack_block() -> None:
    model, data = digits_cnn(pretrained=True), test_set(limit=30)
    flat = robustness_checks.adversarial(model, data, method="pgd", eps=[0.05, 0.1], steps=3)
    block = robustness_checks.adversarial(
        model, data, attack={"method": "pgd", "eps": [0.05, 0.1], "steps": 3}
    )
    assert flat.details["per_eps"] == block.details["per_eps"]
    assert flat.details["attack"]["steps"] == 3


def test_noise_batch_size_reaches_the_check_from_python() -> None:
    seen: list[int] = []

    class Recording(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = digits_cnn(pretrained=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.shape[0])
            return self.inner(x)

    robustness_checks.noise(
        Recording(),
        test_set(limit=20),
        sigma=0.1,
        indices=[0],
        estimator="mc",
        max_evaluations=300,
        batch_size=100,
    )
    assert max(seen) <= 100
