"""Gate cases of the built-in check types: the demo CNN on digits, and known regressions of it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustness_checks.validity.gate_cases import GateCase, Regression

DIGITS = 300  # test digits each gate case runs on


class Biased(nn.Module):
    """The model with `amount` added to one class's logit (a class biased)."""

    def __init__(self, model: nn.Module, label: int = 3, amount: float = 10.0):
        super().__init__()
        self.model, self.label, self.amount = model, label, amount

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x).clone()
        logits[:, self.label] += self.amount
        return logits


class Scaled(nn.Module):
    """The model with its logits multiplied by `factor` (over- or under-confident)."""

    def __init__(self, model: nn.Module, factor: float):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


class Amplified(nn.Module):
    """The model on inputs whose deviation from 0.5 is multiplied by `factor`: a perturbation
    or noise of the same size moves it `factor` times as far (less robust)."""

    def __init__(self, model: nn.Module, factor: float):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(0.5 + self.factor * (x - 0.5))


class Scrambled(nn.Module):
    """The model with its logits multiplied by a fixed pseudo-random factor per input (between
    0.05 and 5): the same predictions, but a confidence that no longer ranks its errors or tells
    its inputs from others (deterministic, so reruns agree)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        phase = torch.sin((x.flatten(1) * 1000.0).sum(dim=1, keepdim=True)) * 0.5 + 0.5
        return logits * (0.05 + 4.95 * phase)


class Frozen(nn.Module):
    """The model on one fixed grey input whatever it is given: its outputs (and uncertainty)
    no longer change with the input."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.full_like(x, 0.5)) + 0.0 * x.flatten(1).sum(dim=1, keepdim=True)


def demo_model() -> nn.Module:
    from robustness_checks.demo.model import digits_cnn

    return digits_cnn(pretrained=True)


def faded_model() -> nn.Module:
    """The demo CNN on inputs faded to 30% contrast: about 73% accurate on the test digits, so
    rankings of its errors have enough errors to be measured."""
    return Amplified(demo_model(), 0.3)


def digits() -> Any:
    from robustness_checks.demo.digits import test_set

    return test_set(limit=DIGITS)


def _case(check_type: str, params: dict[str, Any], **regressions: Regression) -> GateCase:
    return GateCase(check_type, params, demo_model, digits, dict(regressions))


def calibration_cases() -> list[GateCase]:
    underconfident = Regression("logits scaled x0.25", lambda m: Scaled(m, 0.25))
    return [_case("calibration", {"metric": "ece", "bootstrap": 200}, ece=underconfident)]


def adversarial_cases() -> list[GateCase]:
    """The adversarially trained demo CNN; its regressions: a class biased (accuracy under
    attack falls), and the standard CNN in its place (adversarial training dropped: the drop
    under attack rises while clean accuracy stays)."""
    from robustness_checks.demo.model import digits_cnn_adversarial

    params = {"attack": {"method": "pgd", "eps": 0.1, "steps": 5}, "gradient_masking": "warn"}
    standard = Regression("adversarial training dropped", lambda _: demo_model())
    regressions = {
        "adversarial_accuracy": Regression("class 3 biased by +10", Biased),
        "accuracy_drop": standard,
    }
    return [GateCase("adversarial", params, digits_cnn_adversarial, digits, regressions)]


def noise_cases() -> list[GateCase]:
    params = {"sigma": 0.3, "estimator": "mc", "inputs": 3, "max_evaluations": 4000}
    return [
        _case(
            "noise",
            params,
            probability=Regression("inputs amplified x3", lambda m: Amplified(m, 3.0)),
        )
    ]


def entropy_trend_cases() -> list[GateCase]:
    params = {"attack": {"method": "fgsm"}, "eps": [0.0, 0.1, 0.2]}
    frozen = Regression("input ignored (no trend left)", Frozen)
    return [_case("entropy_trend", params, trend_p_value=frozen, mean_rise=frozen)]


def selective_cases() -> list[GateCase]:
    scrambled = Regression("confidence scrambled", Scrambled)
    params = {"coverage": 0.8, "min_accuracy": 0.0, "bootstrap": 200}
    regressions = {"accuracy_at_coverage": scrambled, "aurc": scrambled, "e_aurc": scrambled}
    return [GateCase("selective", params, faded_model, digits, regressions)]


def ood_cases() -> list[GateCase]:
    from robustness_checks.demo.digits import noise_images

    scrambled = Regression("confidence scrambled", Scrambled)
    params = {"ood_data": noise_images(100)[0], "metric": "auroc", "bootstrap": 200}
    return [_case("ood", params, auroc=scrambled, aupr=scrambled, fpr95=scrambled)]


def failure_prediction_cases() -> list[GateCase]:
    scrambled = Regression("confidence scrambled", Scrambled)
    params = {"metric": "aupr_error", "bootstrap": 200}
    regressions = {"aupr_error": scrambled, "auroc": scrambled}
    return [GateCase("failure_prediction", params, faded_model, digits, regressions)]


def fuzz_cases() -> list[GateCase]:
    from robustness_checks.validity.fuzz import Trigger, inputs

    class Steady(nn.Module):
        """Class 0 whatever the input."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 2, device=x.device)

    params = {
        "perturbations": [{"kind": "brightness", "max": 0.3}],
        "inputs": 20,
        "max_examples": 30,
        "database": False,
    }
    return [
        GateCase(
            "fuzz",
            params,
            Steady,
            lambda: inputs(1.0, 20),
            {"failing_inputs": Regression("a brightness trigger", lambda _: Trigger())},
        )
    ]
