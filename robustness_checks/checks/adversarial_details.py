"""The typed details of an `adversarial` result: per eps, per bound, and what it gates."""

from __future__ import annotations

from typing import Any, ClassVar

from robustness_checks.details import Block, ExampleRow, GatedValue, Strict, metric_value
from robustness_checks.spec.numbers import KeptNumber


class EpsRow(Block):
    """Accuracy under attack and its drop from clean accuracy at one eps, with intervals."""

    eps: KeptNumber
    adversarial_accuracy: float
    adversarial_accuracy_ci: tuple[float, float]
    accuracy_drop: float
    accuracy_drop_ci: tuple[float, float]


class BoundDecision(Block):
    """One bound of the check (a metric at an eps) and the rule's outcome for it."""

    eps: KeptNumber
    metric: str
    value: float
    ci: tuple[float, float]
    comparison: str
    threshold: float
    bound_name: str
    outcome: str
    passed: bool


class RandomModelAttack(Block):
    """How a random model was attacked and counted: `eot` draws averaged per attack query,
    `draws` fresh passes judging each point, and accuracy as the expected share of correct
    draws or a majority vote."""

    eot: int
    draws: int
    accuracy: str


class AdversarialDetails(Strict):
    """Details of an `adversarial` result; gated: both metrics at every eps."""

    headline_gated: ClassVar[bool] = False

    attack: dict[str, Any]
    eps: list[KeptNumber]
    clean_accuracy: float
    clean_accuracy_ci: tuple[float, float]
    adversarial_accuracy: float | list[float]
    accuracy_drop: float | list[float]
    per_eps: list[EpsRow]
    decisions: list[BoundDecision]
    forward_passes: int
    backward_passes: int
    failing_examples: list[ExampleRow]
    examples_used: int | None = None
    sequential: dict[str, str] | None = None
    masking_probe: dict[str, Any] | None = None
    gradient_masking: dict[str, Any] | None = None
    broken_by: list[dict[str, Any]] | None = None
    stages: list[dict[str, Any]] | None = None
    random_model: RandomModelAttack | None = None

    def breakdown(self, result: Any) -> list[GatedValue]:
        return [
            metric_value(result, metric, row[metric], row[f"{metric}_ci"], eps=row.eps)
            for row in self.per_eps
            for metric in ("adversarial_accuracy", "accuracy_drop")
        ]

    def shown_examples(self) -> list[ExampleRow]:
        return self.failing_examples

    def attack_label(self) -> str:
        """The attack's short name, e.g. 'PGD-Linf'."""
        return str(self.attack.get("label", "attack"))

    def attack_norm(self) -> str:
        """The attack's norm: 'inf' or '2'."""
        return str(self.attack.get("norm", ""))
