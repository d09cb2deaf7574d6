"""Input and output contracts: data a check does not understand is an error, never a pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustness_checks
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.errors import LoadError, ModelOutputError

CALLS = {
    "calibration": lambda m, d: robustness_checks.calibration(m, d, max=0.5, bootstrap=10),
    "selective": lambda m, d: robustness_checks.selective(
        m, d, coverage=0.5, min_accuracy=0.5, bootstrap=10
    ),
    "failure_prediction": lambda m, d: robustness_checks.failure_prediction(
        m, d, min=0.1, bootstrap=10
    ),
    "ood": lambda m, d: robustness_checks.ood(m, d, torch.rand(20, 1, 8, 8), min=0.1, bootstrap=10),
    "fuzz": lambda m, d: robustness_checks.fuzz(
        m,
        d,
        perturbations=[{"kind": "linf", "eps": 0.01}],
        inputs=2,
        max_examples=5,
        database=False,
    ),
    "adversarial": lambda m, d: robustness_checks.adversarial(m, d, eps=0.05, steps=2),
    "noise": lambda m, d: robustness_checks.noise(
        m, d, sigma=0.1, indices=[0], estimator="mc", max_evaluations=200
    ),
}


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return digits_cnn(pretrained=True)


@pytest.mark.parametrize("label", [10, -3])
@pytest.mark.parametrize("check", sorted(CALLS))
def test_labels_outside_the_classes_are_an_error(model: nn.Module, check: str, label: int) -> None:
    x, y = test_set(limit=40)
    y = y.clone()
    y[7] = label
    with pytest.raises(LoadError, match=r"1 of 40 labels are outside the model's classes 0 to 9"):
        CALLS[check](model, (x, y))


class Wrapped(nn.Module):
    def __init__(self, net: nn.Module, kind: str) -> None:
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        z = self.net(x)
        if self.kind == "dict":
            return {"scores": z, "features": z * 2}  # no 'logits' key: nothing to read
        if self.kind == "logits-dict":
            return {"logits": z, "features": z * 2}
        if self.kind == "tuple":
            return z, z.sum(1)
        if self.kind == "one":
            return z[:, :1]
        if self.kind == "int":
            return z.argmax(1, keepdim=True).repeat(1, 2)
        if self.kind == "short":
            return z[:-1]
        raise AssertionError(self.kind)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("dict", r"returned a dict with keys 'scores', 'features'.*set model.output"),
        ("tuple", r"returned a tuple of 2 items.*\(0 to 1\)"),
        ("one", r"1 output per input; a classifier needs at least 2 classes"),
        ("int", r"must return float logits"),
        ("short", r"of shape \(\d+, 10\) for \d+ inputs"),
    ],
)
@pytest.mark.parametrize("check", ["calibration", "ood", "noise", "adversarial"])
def test_outputs_that_are_not_logits_are_named(
    model: nn.Module, kind: str, message: str, check: str
) -> None:
    with pytest.raises(ModelOutputError, match=message):
        CALLS[check](Wrapped(model, kind), test_set(limit=40))


def test_output_option_selects_the_logits() -> None:
    from robustness_checks.execution.contracts import SelectOutput

    base = digits_cnn(pretrained=True)
    data = test_set(limit=60)
    plain = robustness_checks.calibration(base, data, bootstrap=10)
    assert robustness_checks.calibration(
        Wrapped(base, "logits-dict"), data, bootstrap=10
    ).value == (plain.value)
    for kind, key in (("dict", "scores"), ("logits-dict", "logits"), ("tuple", 0)):
        chosen = robustness_checks.calibration(
            SelectOutput(Wrapped(base, kind), key), data, bootstrap=10
        )
        assert chosen.value == plain.value


def test_float64_and_half_models_get_inputs_in_their_dtype() -> None:
    data = test_set(limit=60)
    plain = robustness_checks.calibration(digits_cnn(pretrained=True), data, bootstrap=10)
    double = robustness_checks.calibration(digits_cnn(pretrained=True).double(), data, bootstrap=10)
    assert double.value == pytest.approx(plain.value, abs=1e-6)


def test_wrong_input_shape_names_the_shape_and_the_fields() -> None:
    x, y = test_set(limit=20)
    three = x.repeat(1, 3, 1, 1)  # RGB images for a grey-scale model
    with pytest.raises(ModelOutputError, match=r"inputs of shape \(3, 8, 8\).*data.resize"):
        robustness_checks.calibration(digits_cnn(pretrained=True), (three, y))


def test_spec_output_field_reaches_the_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "wrapped.py").write_text(
        "from robustness_checks.demo.model import digits_cnn\n"
        "import torch\n"
        "class W(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.net = digits_cnn(pretrained=True)\n"
        "    def forward(self, x):\n"
        "        return {'logits': self.net(x)}\n"
        "def make():\n    return W()\n"
    )
    spec = tmp_path / "w.robustness.yaml"
    spec.write_text(
        "model: {factory: wrapped.py:make, output: logits}\n"
        "data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 50}}\n"
        "checks: [{name: c, type: calibration, max: 0.5, bootstrap: 10}]\n"
    )
    from robustness_checks.execution.runtime import SpecRuntime
    from robustness_checks.spec.parse import load_spec

    document = load_spec(spec)
    runtime = SpecRuntime.load(document)
    from robustness_checks.checks.runner import execute

    result = execute(runtime.context(document.spec.checks[0]), document.spec.checks[0])
    assert result.passed, result.message
