"""The `attack` block of a spec: method, norm, eps and PGD settings, shared by several checks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator

from robustness_checks.spec.schema import StrictModel

NonNegative = Annotated[float, Field(ge=0.0)]
# Validated as "inf" or "2" after normalising; the JSON Schema lists every spelling accepted.
NORM_SPELLINGS = ["inf", "linf", "Linf", "infinity", "2", "l2", "L2", "2.0"]
NormField = Annotated[
    Literal["inf", "2"],
    WithJsonSchema({"anyOf": [{"enum": NORM_SPELLINGS}, {"enum": [2, 2.0]}]}),
]
METHOD_LABELS = {
    "fgsm": "FGSM",
    "pgd": "PGD",
    "uniform": "uniform noise",
    "gaussian": "Gaussian noise",
}


class AttackSpec(StrictModel):
    """How inputs are perturbed: an attack (fgsm, pgd) or a random baseline (uniform, gaussian)."""

    method: Literal["fgsm", "pgd", "uniform", "gaussian"] = "pgd"
    norm: NormField = Field("inf", description="inf or 2 (also linf, l2)")
    eps: NonNegative | list[NonNegative] | None = Field(
        None, description="perturbation size, or a list: one run, every eps"
    )
    steps: Annotated[int, Field(ge=1)] = 10
    step_size: Annotated[float, Field(gt=0.0)] | None = Field(
        None, description="PGD step; default rel_step_size * eps / steps"
    )
    rel_step_size: Annotated[float, Field(gt=0.0)] = 2.5
    restarts: Annotated[int, Field(ge=1)] = 1
    random_start: bool = True
    early_stop: bool = Field(False, description="stop attacking inputs already fooled")
    targeted: Annotated[int, Field(ge=0)] | Literal["least_likely"] | None = None

    @field_validator("norm", mode="before")
    @classmethod
    def _normalise_norm(cls, norm: Any) -> Any:
        text = str(norm).strip().lower().removeprefix("l")
        return {"inf": "inf", "infinity": "inf", "2": "2", "2.0": "2"}.get(text, norm)

    @field_validator("eps")
    @classmethod
    def _non_empty(cls, eps: Any) -> Any:
        if isinstance(eps, list) and not eps:
            raise ValueError("eps must be a number or a non-empty list")
        return eps

    def eps_list(self) -> list[float]:
        if self.eps is None:
            return []
        return [float(e) for e in (self.eps if isinstance(self.eps, list) else [self.eps])]

    def label(self) -> str:
        """A short human name such as 'PGD-Linf' or 'uniform noise (L2)'."""
        norm = "Linf" if self.norm == "inf" else "L2"
        name = METHOD_LABELS[self.method]
        return f"{name}-{norm}" if self.method in ("fgsm", "pgd") else f"{name} ({norm})"

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments for `robustness_checks.attacks.run_attack`, eps excluded."""
        return {
            "method": self.method,
            "norm": self.norm,
            "steps": self.steps,
            "step_size": self.step_size,
            "rel_step_size": self.rel_step_size,
            "restarts": self.restarts,
            "random_start": self.random_start,
            "early_stop": self.early_stop,
            "targeted": self.targeted,
        }
