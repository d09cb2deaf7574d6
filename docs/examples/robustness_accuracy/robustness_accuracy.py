"""A third-party check type for robustness_checks: clean accuracy at least a bound."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import bounded_result
from robustness_checks.execution.context import CheckContext
from robustness_checks.metrics.intervals import clopper_pearson
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec


class AccuracyCheck(CheckSpec):
    """Parameters of an `accuracy` check."""

    type: Literal["accuracy"]
    min: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        None, description="smallest allowed accuracy"
    )


def run_accuracy(context: CheckContext, params: AccuracyCheck) -> CheckResult:
    """Count correct predictions in batches; exact (Clopper-Pearson) interval."""
    correct = 0
    with torch.no_grad():
        for _, x, y in context.examples.batches(context.device):
            correct += int((context.model(x).argmax(dim=1) == y).sum())
    n = len(context.examples)
    return bounded_result(
        context,
        params,
        metric="accuracy",
        value=correct / n,
        ci=clopper_pearson(correct, n, context.confidence),
        minimum=params.min,
        examples=n,
        details={"correct": correct},
        bound_name="min",
    )


def validity_cases() -> list:
    """Populations with known accuracy, for robustness_checks' decision validity harness."""
    from robustness_checks.validity.cases import model_case

    return [
        model_case(
            "accuracy",
            "accuracy",
            ">=",
            0.8,
            _population,
            population="one-hot logits, each prediction right with probability = truth",
        )
    ]


def _population(truth: float, n: int, rng) -> tuple:
    """A model returning its input as logits, and n one-hot inputs right with probability truth."""
    predictions = rng.integers(0, 10, n)
    wrong = (predictions + rng.integers(1, 10, n)) % 10
    labels = np.where(rng.random(n) < truth, predictions, wrong)
    x = torch.nn.functional.one_hot(torch.as_tensor(predictions), 10).float()
    return torch.nn.Identity(), (x, torch.as_tensor(labels))


def gate_cases() -> list:
    """The demo CNN and a class-biased copy, for robustness_checks' gate validity harness."""
    from robustness_checks.validity.gate_cases import GateCase, Regression
    from robustness_checks.validity.gates import Biased, demo_model, digits

    biased = Regression("class 3 biased by +10", Biased)
    return [GateCase("accuracy", {"min": 0.5}, demo_model, digits, {"accuracy": biased})]


CHECK = CheckType(
    name="accuracy",
    params=AccuracyCheck,
    run=run_accuracy,
    summary="clean accuracy at least a bound, with an exact interval",
    metrics={"accuracy": "higher"},
    docs="extending.md",
    validity="robustness_accuracy:validity_cases",
    gate_cases="robustness_accuracy:gate_cases",
)
