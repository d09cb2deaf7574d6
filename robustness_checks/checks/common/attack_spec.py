"""The `attack` block of a spec: method, norm, eps and its settings, shared by several checks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from robustness_checks.attacks.expectation import DEFAULT_DRAWS, DEFAULT_EOT
from robustness_checks.spec.numbers import NonNegativeNumber, PositiveNumber, written_texts
from robustness_checks.spec.schema import StrictModel

# Validated as "inf" or "2" after normalising; the JSON Schema lists every spelling accepted.
NORM_SPELLINGS = ["inf", "linf", "Linf", "infinity", "2", "l2", "L2", "2.0"]
NormField = Annotated[
    Literal["inf", "2"],
    WithJsonSchema({"anyOf": [{"enum": NORM_SPELLINGS}, {"enum": [2, 2.0]}]}),
]
METHOD_LABELS = {
    "fgsm": "FGSM",
    "pgd": "PGD",
    "apgd": "APGD",
    "square": "Square",
    "auto": "AutoAttack",
    "uniform": "uniform noise",
    "gaussian": "Gaussian noise",
}
# Steps when `steps` is not given: 100 for APGD (the paper's and AutoAttack's budget), 10 for
# PGD (and the other methods, which do not use it); square and auto have no steps.
DEFAULT_STEPS = {"apgd": 100, "square": None, "auto": None}
GRADIENT_METHODS = ("fgsm", "pgd", "apgd")
# Fields each new method refuses when set to something other than their default: they would be
# silently ignored. (fgsm, pgd, uniform and gaussian keep accepting what they always accepted.)
UNUSED_FIELDS = {
    "apgd": ("step_size", "rel_step_size", "queries", "p_init", "version"),
    "square": (
        "steps",
        "step_size",
        "rel_step_size",
        "restarts",
        "random_start",
        "targeted",
        "loss",
        "version",
    ),
    "auto": (
        "steps",
        "step_size",
        "rel_step_size",
        "restarts",
        "random_start",
        "early_stop",
        "targeted",
        "loss",
        "queries",
        "p_init",
    ),
}


class AttackSpec(StrictModel):
    """How inputs are perturbed: an attack (fgsm, pgd, apgd, square, auto) or a random baseline
    (uniform, gaussian)."""

    method: Literal["fgsm", "pgd", "apgd", "square", "auto", "uniform", "gaussian"] = "pgd"
    norm: NormField = Field("inf", description="inf or 2 (also linf, l2)")
    eps: NonNegativeNumber | list[NonNegativeNumber] | None = Field(
        None, description="perturbation size (8/255 too), or a list: one run, every eps"
    )
    steps: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="gradient steps; default the method's: 10 for pgd, 100 for apgd"
    )
    step_size: PositiveNumber | None = Field(
        None, description="PGD step (2/255 too); default rel_step_size * eps / steps"
    )
    rel_step_size: Annotated[float, Field(gt=0.0)] = 2.5
    restarts: Annotated[int, Field(ge=1, le=1_000)] = 1
    random_start: bool = True
    early_stop: bool = Field(False, description="stop attacking inputs already fooled")
    targeted: Annotated[int, Field(ge=0)] | Literal["least_likely"] | None = Field(
        None,
        description="a class or least_likely; for apgd an int N attacks the N most likely "
        "other classes (APGD-T)",
    )
    loss: Literal["ce", "dlr"] = Field(
        "ce", description="ce or dlr (difference of logits ratio, scale invariant): pgd, apgd"
    )
    queries: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        5000, description="square: most model queries per example"
    )
    p_init: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        None, description="square: initial square area fraction; default 0.8 (L-inf), 0.1 (L2)"
    )
    version: Literal["standard", "fast", "full", "rand"] = Field(
        "standard",
        description="auto: standard (APGD-CE, APGD-T on MALT's 4 nearest targets, Square that "
        "stops on rows making no progress), fast (about 1/5 of full), full (AutoAttack's "
        "budget: 9 targets, 5000 Square queries for every row) or rand (for random models: "
        "APGD-CE and APGD-DLR with expectation over eot draws; chosen by itself when the model "
        "is random and version is not given)",
    )
    eot: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        None,
        description="random models: draws whose logits are averaged at every attack query "
        "(expectation over transformation); default 20 for gradient attacks, 1 for square and "
        "the random baselines. Given, the model is treated as random even if it looks "
        "deterministic",
    )
    draws: Annotated[int, Field(ge=1, le=100_000)] = Field(
        DEFAULT_DRAWS,
        description="random models: fresh forward passes that judge each clean input and each "
        "attack point",
    )
    random_accuracy: Literal["expected", "majority"] = Field(
        "expected",
        description="random models: an example counts its share of correct fresh draws "
        "(expected) or 1 when at least half of them are correct (majority)",
    )

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

    @model_validator(mode="after")
    def _fields_fit_method(self) -> AttackSpec:
        method = self.method
        unused = [name for name in UNUSED_FIELDS.get(method, ()) if self._given(name)]
        if method not in ("auto", "square"):
            unused += [name for name in ("queries", "p_init") if self._given(name)]
        if method != "auto" and self._given("version"):
            unused.append("version")
        if unused:
            listed = ", ".join(dict.fromkeys(unused))
            hint = {
                "auto": "method auto runs a fixed sequence of attacks: choose its budget "
                "with version: standard | fast | full | rand",
                "square": "square is gradient-free and untargeted: its budget is queries",
                "apgd": "apgd sets its own step sizes (2 eps, halved when the loss stalls)",
            }.get(method, "version applies to method auto, queries and p_init to square")
            raise ValueError(f"{listed} cannot be used with method {method}: {hint}")
        if self.loss == "dlr" and method not in ("pgd", "apgd"):
            raise ValueError(
                f"loss dlr needs a multi-step gradient attack (pgd or apgd), not {method}"
            )
        if method == "apgd" and self.targeted is not None and self.targeted == 0:
            raise ValueError("targeted for apgd is the number N of classes to target: N >= 1")
        return self

    def _given(self, name: str) -> bool:
        """Whether the field was written with a value other than its default."""
        default = type(self).model_fields[name].default
        return name in self.model_fields_set and getattr(self, name) != default

    @property
    def resolved_steps(self) -> int | None:
        """`steps`, or the method's default when it is None (None for square and auto)."""
        return self.steps if self.steps is not None else DEFAULT_STEPS.get(self.method, 10)

    def describe(self) -> dict[str, Any]:
        """The settings for reports: every field, `steps` resolved, the label, and `written`:
        the fields written as text such as 8/255, as written (only when there are any)."""
        described = {**self.model_dump(), "steps": self.resolved_steps, "label": self.label()}
        written = written_texts(self, ("eps", "step_size"))
        return {**described, "written": written} if written else described

    def treats_as_random(self) -> bool:
        """Whether the spec asks for random-model handling whatever the detection says."""
        return self.eot is not None or self.version == "rand"

    def for_model(self, random: bool) -> AttackSpec:
        """The attack as run on a model that is (or is not) random: on a random one, auto
        without a written version runs `rand`, and eot gets its default."""
        if not (random or self.treats_as_random()):
            return self
        update: dict[str, Any] = {}
        if self.method == "auto" and not self._given("version"):
            update["version"] = "rand"
        if self.eot is None:
            gradient = self.method in GRADIENT_METHODS or self.method == "auto"
            update["eot"] = DEFAULT_EOT if gradient else 1
        return self.model_copy(update=update)

    def eps_list(self) -> list[float]:
        """eps as a list; a value written as text (8/255) stays a `Written` float."""
        if self.eps is None:
            return []
        return list(self.eps) if isinstance(self.eps, list) else [self.eps]

    def label(self) -> str:
        """A short human name: 'PGD-Linf', 'APGD-CE-Linf', 'APGD-T-Linf', 'Square-L2',
        'AutoAttack-standard-Linf' or 'uniform noise (L2)'."""
        norm = "Linf" if self.norm == "inf" else "L2"
        name = METHOD_LABELS[self.method]
        if self.method in ("uniform", "gaussian"):
            return f"{name} ({norm})"
        if self.method == "auto":
            return f"{name}-{self.version}-{norm}"
        if self.eot is not None and self.eot > 1:
            return f"EOT-{self._plain_label(name, norm)}"
        return self._plain_label(name, norm)

    def _plain_label(self, name: str, norm: str) -> str:
        if self.method == "apgd":
            top_n = isinstance(self.targeted, int)
            if top_n:
                return f"{name}-T-{norm}" if self.loss == "dlr" else f"{name}-T-CE-{norm}"
            return f"{name}-{self.loss.upper()}-{norm}"
        if self.method == "pgd" and self.loss == "dlr":
            return f"{name}-DLR-{norm}"
        return f"{name}-{norm}"

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments for `robustness_checks.attacks.run_attack`, eps excluded."""
        random = {} if self.eot is None else {"eot": self.eot, "draws": self.draws}
        if self.method == "auto":
            return {"method": "auto", "norm": self.norm, "version": self.version, **random}
        options = {
            **random,
            "method": self.method,
            "norm": self.norm,
            "steps": self.resolved_steps or 1,
            "step_size": self.step_size,
            "rel_step_size": self.rel_step_size,
            "restarts": self.restarts,
            "random_start": self.random_start,
            "early_stop": self.early_stop,
            "targeted": self.targeted,
        }
        if self.method in ("pgd", "apgd"):
            options["loss"] = self.loss
        if self.method == "square":
            options.update(queries=self.queries, p_init=self.p_init)
        return options
