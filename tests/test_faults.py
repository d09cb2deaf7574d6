"""Faults: models that raise, return non-finite logits or probabilities, or mask gradients;
broken weights files; missing CUDA devices; Ctrl-C. Each names the check and the cause, the
other checks still run, and nothing already measured is lost."""

from __future__ import annotations

import json
import os
import textwrap
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from torch import nn

import robustness_checks
from robustness_checks import LoadError, ModelOutputError, RobustnessWarning
from robustness_checks.attacks import run_attack
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.execution.diagnostics import MASKING_SHARE, findings_warnings
from robustness_checks.loading import device as device_module
from robustness_checks.loading.device import resolve_device
from robustness_checks.loading.models import build_network, load_state_dict
from robustness_checks.spec.schema import ModelSource

pytest_plugins = ["pytester"]

# Factories that the specs of the plugin tests name: each wraps the demo model in one fault.
FACTORIES = """\
import torch
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn


class Softmaxed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = digits_cnn(pretrained=True)

    def forward(self, x):
        return self.net(x).softmax(dim=1)


class RaisesOnBrightInputs(torch.nn.Module):
    \"\"\"Raises for any input with a pixel above 2 (example 7 of `poisoned_data`).\"\"\"

    def __init__(self):
        super().__init__()
        self.net = digits_cnn(pretrained=True)

    def forward(self, x):
        if bool((x > 2).any()):
            raise ValueError("pixel values above 2 are not supported")
        return self.net(x)


def softmaxed():
    return Softmaxed()


def raises_on_bright_inputs():
    return RaisesOnBrightInputs()


def poisoned_data():
    x, y = test_set(limit=100)
    x = x.clone()
    x[7] = 3.0
    return x, y
"""

GOOD_SPEC = """\
model: {factory: robustness_checks.demo.model:digits_cnn, kwargs: {pretrained: true}}
data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 100}}
checks:
  - {name: good-calibration, type: calibration, max: 0.2, bootstrap: 10}
"""


class Softmaxed(nn.Module):
    def __init__(self, net: nn.Module, log: bool = False):
        super().__init__()
        self.net = net
        self.log = log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return logits.log_softmax(dim=1) if self.log else logits.softmax(dim=1)


class Rounded(nn.Module):
    """Rounds the inputs of the rows whose first value is above 0.5: their gradient is zero."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masked = (x.flatten(1)[:, 0] > 0.5).view(-1, *[1] * (x.dim() - 1))
        return self.net(torch.where(masked, x.round(), x))


class Infinite(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x).clone()
        logits[3, 0] = float("inf")
        return logits


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return digits_cnn(pretrained=True)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return test_set(limit=120)


# ----------------------------------------------------------- probabilities instead of logits


def test_probabilities_instead_of_logits_warn_and_still_measure(net, data) -> None:
    with pytest.warns(RobustnessWarning) as caught:
        result = robustness_checks.calibration(Softmaxed(net), data, bootstrap=10, name="ece")
    assert result.outcome == "passed" and 0 <= result.value <= 1  # measured all the same
    (message,) = result.warnings
    assert message.startswith("the model seems to return probabilities, not logits")
    assert "remove the model's final softmax" in message
    assert "log_softmax outputs are fine" in message
    assert result.to_dict()["warnings"] == [message]
    assert [str(w.message) for w in caught] == [f"check 'ece': {message}"]
    assert "with 1 warning" in repr(result)


def test_probabilities_warn_in_attack_checks_too(net, data) -> None:
    with pytest.warns(RobustnessWarning, match="check 'pgd': the model seems to return prob"):
        result = robustness_checks.adversarial(
            Softmaxed(net), data, eps=0.05, attack={"steps": 2}, name="pgd"
        )
    assert any(w.startswith("the model seems to return probabilities") for w in result.warnings)


def test_logits_and_log_probabilities_do_not_warn(net, data) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RobustnessWarning)
        for model in (net, Softmaxed(net, log=True)):
            assert robustness_checks.calibration(model, data, bootstrap=10).warnings == []
        pgd = robustness_checks.adversarial(net, data, eps=0.05, attack={"steps": 2})
        assert pgd.warnings == []


# ----------------------------------------------------------------- zero gradients (masking)


def test_attack_result_counts_zero_gradients_at_the_first_step() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    y = torch.randint(0, 10, (64,))
    model = Rounded(digits_cnn(pretrained=True)).eval()
    expected = int((x.flatten(1)[:, 0] > 0.5).sum())
    assert 0 < expected < 64
    fgsm = run_attack(model, x, y, method="fgsm", eps=[0.1, 0.2])
    assert int(fgsm.zero_gradients) == expected and fgsm.gradient_examples == 64
    healthy = run_attack(digits_cnn(pretrained=True), x, y, method="pgd", eps=0.1, steps=3)
    assert int(healthy.zero_gradients) == 0 and healthy.gradient_examples == 64
    uniform = run_attack(model, x, y, method="uniform", eps=0.1)
    assert uniform.zero_gradients is None and uniform.gradient_examples == 0


@pytest.mark.parametrize("check", ["adversarial", "entropy_trend"])
def test_zero_gradients_warn_of_gradient_masking(net, data, check: str) -> None:
    x, y = data
    x = x.clone()
    x.view(len(x), -1)[:, 0] = 0.9  # every example takes the rounding branch
    options = {"attack": {"steps": 3}, "eps": 0.1} if check == "adversarial" else {"eps": [0, 0.1]}
    with pytest.warns(RobustnessWarning, match=f"check '{check}': gradient masking suspected"):
        result = getattr(robustness_checks, check)(Rounded(net), (x, y), name=check, **options)
    (message,) = result.warnings
    assert message.startswith(
        f"gradient masking suspected: the input gradient was zero (or not finite) for {len(x)} "
        f"of {len(x)} examples at the attack's first gradient step"
    )
    assert "method: uniform or gaussian" in message


def test_masking_warning_needs_a_meaningful_share() -> None:
    below = {"probabilities": 0, "zero_gradients": 1, "gradient_examples": 1000}
    assert MASKING_SHARE * 1000 > 1 and findings_warnings(below) == []
    at = {**below, "zero_gradients": int(MASKING_SHARE * 1000)}
    assert findings_warnings(at)[0].startswith("gradient masking suspected")
    assert findings_warnings({**below, "zero_gradients": 0, "gradient_examples": 0}) == []


# ------------------------------------------------------------------------ non-finite logits


def test_infinite_logits_stop_an_attack_check_with_the_cause(net, data) -> None:
    with pytest.raises(ModelOutputError, match="non-finite logits"):
        robustness_checks.adversarial(Infinite(net), data, eps=0.1, attack={"steps": 2})
    with pytest.raises(ModelOutputError, match=r"NaN or infinite logits for 1 of 120 inputs"):
        robustness_checks.calibration(Infinite(net), data)


class NaNOffTheGrid(nn.Module):
    """Finite on the digits' own pixel values (multiples of 1/16), NaN on perturbed inputs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        off = (x * 16 - (x * 16).round()).abs().flatten(1).amax(dim=1) > 1e-3
        return torch.where(off[:, None], torch.full_like(logits, float("nan")), logits)


def test_nan_logits_at_perturbed_inputs_warn_that_attack_results_are_unreliable(net, data) -> None:
    with pytest.warns(RobustnessWarning) as caught:
        result = robustness_checks.adversarial(
            NaNOffTheGrid(net), data, eps=0.1, attack={"steps": 2}, name="pgd"
        )
    # NaN logits have NaN gradients too, which is what the masking warning also reports.
    assert [str(w.message)[:40] for w in caught] == [
        "check 'pgd': gradient masking suspected:",
        "check 'pgd': the model returned NaN or i",
    ]
    (message,) = [w for w in result.warnings if w.startswith("the model returned NaN")]
    kept = int(run_attack(NaNOffTheGrid(net), *data, method="pgd", eps=0.1, steps=2).nonfinite)
    assert 0 < kept <= len(data[0])
    assert message.startswith(
        f"the model returned NaN or infinite logits at {kept} of the {len(data[0])} perturbed "
        "inputs that the attack kept"
    )


# ---------------------------------------------------------- broken weights and model files


def _truncated(path: Path) -> None:
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "weights.pt"
    torch.save(digits_cnn(pretrained=True).state_dict(), path)
    return path


def test_truncated_weights_file_is_a_clear_load_error(weights: Path) -> None:
    _truncated(weights)
    with pytest.raises(LoadError) as error:
        load_state_dict(weights)
    message = str(error.value)
    assert message.startswith(f"weights file {weights} is truncated or not a torch file")
    assert "torch.save(model.state_dict(), path)" in message


def test_truncated_legacy_weights_file_is_a_clear_load_error(weights: Path) -> None:
    torch.save(torch.load(weights), weights, _use_new_zipfile_serialization=False)
    _truncated(weights)
    with pytest.raises(LoadError, match=r"is truncated or not a torch file.*unexpected EOF"):
        load_state_dict(weights)


def test_random_bytes_are_not_a_weights_file(weights: Path) -> None:
    weights.write_bytes(os.urandom(4096))
    with pytest.raises(LoadError, match=r"is truncated or not a torch file"):
        load_state_dict(weights)


def test_truncated_torchscript_file_is_a_clear_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in torch 2.14
        torch.jit.trace(digits_cnn(pretrained=True).eval(), torch.zeros(1, 1, 8, 8)).save(path)
    _truncated(path)
    with pytest.raises(LoadError) as error, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        build_network(ModelSource(torchscript="model.ts"), tmp_path)
    message = str(error.value)
    assert message.startswith(
        f"cannot load TorchScript file {path}: it is truncated or not a TorchScript file"
    )
    assert "torch.jit.save" in message


@pytest.mark.parametrize("fault", ["truncated", "random-bytes", "truncated-torchscript"])
def test_broken_model_file_fails_its_spec_alone(pytester: pytest.Pytester, fault: str) -> None:
    if fault == "truncated-torchscript":
        name, field = "model.ts", "torchscript"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            example = torch.zeros(1, 1, 8, 8)
            traced = torch.jit.trace(digits_cnn(pretrained=True).eval(), example)
            traced.save(pytester.path / name)
        model = f"model: {{torchscript: {name}}}"
    else:
        name, field = "weights.pt", "weights"
        torch.save(digits_cnn().state_dict(), pytester.path / name)
        model = "model: {factory: robustness_checks.demo.model:digits_cnn, weights: weights.pt}"
    path = pytester.path / name
    if fault == "random-bytes":
        path.write_bytes(os.urandom(4096))
    else:
        _truncated(path)
    pytester.makefile(
        ".robustness.yaml",
        broken=f"{model}\n" + GOOD_SPEC.split("\n", 1)[1].replace("good-", "broken-"),
        good=GOOD_SPEC,
    )
    result = pytester.runpytest("--robustness-json=out.json")
    result.assert_outcomes(passed=1, errors=1)
    what = "TorchScript file" if field == "torchscript" else "weights file"
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting broken.robustness.yaml*",
            f"*broken.robustness.yaml:1, field 'model.{field}': {what} {path} is truncated or "
            "not a torch file*",
        ]
    )
    records = json.loads((pytester.path / "out.json").read_text())["results"]
    assert [(r["check"], r["outcome"]) for r in records] == [("good-calibration", "passed")]


# ------------------------------------------------------------------------------ CUDA device


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def broken_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA that reports itself available but fails to initialise (a driver mismatch, say)."""

    def fail() -> None:
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "init", fail)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.usefixtures("no_cuda")
def test_missing_cuda_device_fails_that_specs_checks_naming_the_field(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".robustness.yaml",
        gpu=GOOD_SPEC.replace("checks:", "device: cuda:3\nchecks:").replace("good-", "gpu-"),
        good=GOOD_SPEC,
    )
    result = pytester.runpytest("--robustness-json=out.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*calibration check 'gpu-calibration' could not run: LoadError: device 'cuda:3' was "
            "asked for but CUDA is not available here; set device: auto (or cpu) in the spec, or "
            "override it with --robustness-device cpu*"
        ]
    )
    records = {
        r["check"]: r for r in json.loads((pytester.path / "out.json").read_text())["results"]
    }
    assert records["gpu-calibration"]["outcome"] == "error"
    assert "device 'cuda:3'" in records["gpu-calibration"]["error"]
    assert records["good-calibration"]["outcome"] == "passed"
    # The option names itself when it is the one asking for the missing device.
    result = pytester.runpytest("good.robustness.yaml", "--robustness-device=cuda")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--robustness-device 'cuda' was asked for*"])


@pytest.mark.usefixtures("broken_cuda")
def test_auto_device_falls_back_to_cpu_when_cuda_cannot_initialise(
    pytester: pytest.Pytester,
) -> None:
    with pytest.warns(RobustnessWarning, match="CUDA driver initialization failed") as caught:
        assert resolve_device("auto") == torch.device("cpu")
    (warning,) = caught
    assert str(warning.message).startswith(
        "device 'auto': CUDA reports itself available but cannot be used (RuntimeError: CUDA "
        "driver initialization failed); running on cpu instead"
    )
    with pytest.raises(LoadError, match=r"device 'cuda' cannot be used: RuntimeError: CUDA driver"):
        resolve_device("cuda")

    pytester.makefile(
        ".robustness.yaml", auto=GOOD_SPEC.replace("checks:", "device: auto\nchecks:")
    )
    result = pytester.runpytest("--robustness-json=out.json", "-W", "default")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*RobustnessWarning: check 'good-calibration': device 'auto': CUDA reports itself "
            "available but cannot be used*",
            "warning: auto.robustness.yaml::good-calibration: device 'auto': CUDA reports*",
        ]
    )
    document = json.loads((pytester.path / "out.json").read_text())
    assert document["environment"]["device"] == "cpu"
    (record,) = document["results"]
    assert record["outcome"] == "passed"
    assert record["warnings"][0].startswith("device 'auto': CUDA reports itself available")


def test_working_cuda_is_used_by_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_module, "cuda_problem", lambda index: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RobustnessWarning)
        assert resolve_device("auto") == torch.device("cuda")


# ----------------------------------------------------- a model that raises, warnings in reports


def test_model_that_raises_for_some_inputs_errors_its_checks_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(factories=FACTORIES)
    pytester.makefile(
        ".robustness.yaml",
        raising=textwrap.dedent("""\
        model: {factory: factories.py:raises_on_bright_inputs}
        data: {factory: factories.py:poisoned_data}
        bounds: null
        checks:
          - {name: all-inputs, type: calibration}
          - name: first-inputs
            type: noise
            sigma: 0.05
            estimator: mc
            indices: [0, 1]
            max_evaluations: 200
            max_probability: 1.0
        """),
        good=GOOD_SPEC,
    )
    result = pytester.runpytest("--robustness-json=out.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*calibration check 'all-inputs' could not run: ValueError: pixel values above 2 are "
            "not supported*",
        ]
    )
    shown = result.stdout.str()  # the user's frames, none of the library's or pytest's
    assert "factories.py" in shown
    assert "/_pytest/" not in shown and "/pluggy/" not in shown
    assert "robustness_checks/checks" not in shown
    records = {
        r["check"]: r for r in json.loads((pytester.path / "out.json").read_text())["results"]
    }
    assert set(records) == {"all-inputs", "first-inputs", "good-calibration"}
    failed = records["all-inputs"]
    assert failed["outcome"] == "error" and failed["value"] is None
    assert failed["error"] == "ValueError: pixel values above 2 are not supported"
    assert (
        failed["message"] == "all-inputs: error: ValueError: pixel values above 2 are not supported"
    )
    assert records["first-inputs"]["outcome"] == "passed"
    assert records["first-inputs"]["evaluations"] > 0
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    assert set(cases) == {"all-inputs", "first-inputs", "good-calibration"}
    # An errored check is a JUnit <error>, not a <failure>, and has no value.
    assert cases["all-inputs"].find("failure") is None
    error = cases["all-inputs"].find("error")
    assert error is not None
    assert "all-inputs" in error.text and "ValueError" in error.text
    errored = {p.get("name"): p.get("value") for p in cases["all-inputs"].iter("property")}
    assert errored["value"] == "" and errored["outcome"] == "error"
    properties = {p.get("name"): p.get("value") for p in cases["first-inputs"].iter("property")}
    assert properties["passed"] == "true" and properties["metric"] == "probability"


def test_warnings_reach_every_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=FACTORIES)
    pytester.makefile(
        ".robustness.yaml",
        softmaxed=textwrap.dedent("""\
        model: {factory: factories.py:softmaxed}
        data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 100}}
        checks:
          - {name: calibrated, type: calibration, bootstrap: 10}
        """),
        good=GOOD_SPEC,
    )
    result = pytester.runpytest(
        "--robustness-json=out.json",
        "--robustness-html=out.html",
        "--junitxml=junit.xml",
        "-W",
        "default",
    )
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "softmaxed.robustness.yaml::calibrated",
            "*RobustnessWarning: check 'calibrated': the model seems to return probabilities*",
            "*robustness checks*",
            "warning: softmaxed.robustness.yaml::calibrated: the model seems to return "
            "probabilities, not logits*",
        ]
    )
    records = {
        r["check"]: r for r in json.loads((pytester.path / "out.json").read_text())["results"]
    }
    (message,) = records["calibrated"]["warnings"]
    assert message.startswith("the model seems to return probabilities")
    assert records["good-calibration"]["warnings"] == []
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    properties = [(p.get("name"), p.get("value")) for p in cases["calibrated"].iter("property")]
    assert ("warning", message) in properties
    assert "warning" not in [p.get("name") for p in cases["good-calibration"].iter("property")]
    page = (pytester.path / "out.html").read_text()
    assert "1 warning</span>" in page and "warning: the model seems to return probabilities" in page
    # With warnings as errors the check fails, but its measurement is still reported.
    result = pytester.runpytest(
        "softmaxed.robustness.yaml", "--robustness-json=strict.json", "-W", "error::UserWarning"
    )
    result.assert_outcomes(failed=1)
    (record,) = json.loads((pytester.path / "strict.json").read_text())["results"]
    assert record["value"] is not None and record["warnings"] == [message]


# ---------------------------------------------------------------------------------- Ctrl-C

INTERRUPTING_FACTORY = """\
import torch
from robustness_checks.demo.model import digits_cnn


class StopsOnThirdCheck(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = digits_cnn(pretrained=True)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 7:  # in the third check's randomness probe (the first check's 2 + 1,
            # the second's 2: it reuses the first's logits)
            raise KeyboardInterrupt
        return self.net(x)


def model():
    return StopsOnThirdCheck()
"""


def test_ctrl_c_keeps_every_finished_check_in_every_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(factories=INTERRUPTING_FACTORY)
    pytester.makefile(
        ".robustness.yaml",
        spec=textwrap.dedent("""\
        model: {factory: factories.py:model}
        data: {factory: robustness_checks.demo.digits:test_set, kwargs: {limit: 100}}
        checks:
          - {name: first, type: calibration, bootstrap: 10}
          - {name: second, type: calibration, bootstrap: 10, max: 0.0001}
          - {name: third, type: calibration}
          - {name: fourth, type: calibration}
        """),
    )
    result = pytester.runpytest_subprocess(
        "--robustness-json=r.json", "--robustness-html=r.html", "--junitxml=junit.xml"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    # The check that was interrupted is recorded as an error, then the interrupt goes on.
    assert [(r["check"], r["outcome"]) for r in records] == [
        ("first", "passed"),
        ("second", "failed"),
        ("third", "error"),
    ]
    assert "KeyboardInterrupt" in records[2]["error"]
    assert all(r["value"] is not None for r in records[:2])
    assert [r["evaluations"] for r in records[:2]] == [100, 0]  # the second reuses the logits
    assert json.loads((pytester.path / "r.json").read_text())["complete"] is False
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    assert {"first", "second"} <= set(cases) and "fourth" not in cases
    for name, record in zip(("first", "second"), records, strict=False):
        properties = {p.get("name"): p.get("value") for p in cases[name].iter("property")}
        assert float(properties["value"]) == pytest.approx(record["value"])
    page = (pytester.path / "r.html").read_text()
    assert "1 passed" in page and "1 failed" in page
    assert 'id="check-3"' in page and 'id="check-4"' not in page
    leftovers = [p.name for p in pytester.path.iterdir() if p.name.startswith((".r.", ".junit"))]
    assert leftovers == []
