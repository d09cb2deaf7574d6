"""The `fuzz` check: a property must hold under every perturbation hypothesis finds in a budget."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import torch
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from pydantic import Field, model_validator

from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.bounds import check_perturbation_bounds
from robustness_checks.checks.common.inputs import (
    PICTURED_INPUT,
    SelectsInputs,
    pixel_rows,
    selected_inputs,
)
from robustness_checks.checks.common.report_data import add_saliency
from robustness_checks.details import ExampleRow, Strict
from robustness_checks.errors import RobustnessError
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.seeding import derive_seed
from robustness_checks.fuzzing import strategies
from robustness_checks.fuzzing.search import (
    NamespacedDatabase,
    PropertyEvaluator,
    Targets,
    explore_all,
    search_one,
)
from robustness_checks.fuzzing.strategies import Perturbation
from robustness_checks.locations import Location
from robustness_checks.metrics.intervals import clopper_pearson
from robustness_checks.results import CheckResult, format_number, outcome_of
from robustness_checks.spec.numbers import NonNegativeNumber
from robustness_checks.spec.schema import Probability, StrictModel

DEFAULT_INPUTS = 20
DATABASE_ENV = "ROBUSTNESS_FUZZ_DATABASE"  # a directory, or "none" for no database
DEFAULT_DATABASE = Path(".hypothesis") / "robustness"

# The property calls the model, so a slow draw is usually device warm-up or a garbage collection
# landing in the first examples, never a problem of the strategies (they draw a few numbers, so
# data_too_large / large_base_example cannot fire either); nested_given lets a user call the check
# inside their own @given test. A health check must never decide a model check.
SUPPRESSED = [
    check
    for name in ("too_slow", "data_too_large", "large_base_example", "nested_given")
    if (check := getattr(HealthCheck, name, None)) is not None
]


class PerturbationSpec(StrictModel):
    """One entry of `perturbations`: a kind and its budget."""

    kind: Literal[
        "linf", "l2", "gaussian", "brightness", "contrast", "translate", "rotate", "occlusion"
    ]
    eps: NonNegativeNumber | None = Field(
        None, description="linf, l2: largest norm of the noise (8/255 too)"
    )
    sigma: NonNegativeNumber | None = Field(
        None, description="gaussian: largest standard deviation (8/255 too)"
    )
    max: NonNegativeNumber | None = Field(
        None, description="brightness, contrast, rotate (degrees), translate, occlusion (pixels)"
    )
    value: float | None = Field(None, description="occlusion: fill value (default: lower bound)")

    @model_validator(mode="after")
    def _valid_budget(self) -> PerturbationSpec:
        strategies.check_budget(self.kind, self.budget())
        return self

    def budget(self) -> dict[str, float]:
        names = ("eps", "sigma", "max", "value")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.budget()}

    def label(self) -> str:
        return " ".join([self.kind, *(f"{k} {format_number(v)}" for k, v in self.budget().items())])


class FuzzCheck(SelectsInputs):
    """Parameters of a `fuzz` check."""

    default_inputs: ClassVar[int] = DEFAULT_INPUTS

    type: Literal["fuzz"]
    perturbations: list[PerturbationSpec] = Field(
        min_length=1, description="applied in order, e.g. [{kind: brightness, max: 0.3}]"
    )
    property: Literal["label_invariant"] | None = Field(
        None, description="the prediction never changes (the default property)"
    )
    max_confidence_drop: Probability | None = Field(
        None, description="the probability of the clean prediction falls by at most this"
    )
    max_examples: Annotated[int, Field(ge=1, le=100_000)] = Field(
        200, description="hypothesis test cases per input"
    )
    database: Location | Literal[False] | None = Field(
        None,
        description=f"example database directory; false: none; default ${DATABASE_ENV} "
        f"or {DEFAULT_DATABASE}",
    )

    @model_validator(mode="after")
    def _one_choice(self) -> FuzzCheck:
        if self.property is not None and self.max_confidence_drop is not None:
            raise ValueError(
                "give property: label_invariant or max_confidence_drop, not both (one property "
                "per check)"
            )
        return self

    def property_name(self) -> str:
        return "label_invariant" if self.max_confidence_drop is None else "max_confidence_drop"

    def budget_label(self) -> str:
        return " + ".join(spec.label() for spec in self.perturbations)


class FuzzDetails(Strict):
    """Details of a `fuzz` result: what was searched and the shrunk failures."""

    property: str
    max_confidence_drop: float | None = None
    perturbations: list[dict[str, Any]]
    inputs: list[int]
    fuzzed_inputs: int
    failing_inputs: int
    max_examples: int
    hypothesis_seed: int
    database: str | None = None
    failures: list[ExampleRow]

    def shown_examples(self) -> list[ExampleRow]:
        return self.failures


def run_fuzz(context: CheckContext, params: FuzzCheck) -> CheckResult:
    """Search perturbations of each input with hypothesis; report the shrunk failures.

    1. replay: each input's earlier failures from the example database, shrunk again;
    2. explore: one seeded hypothesis run of `max_examples` test cases, each evaluated on all
       remaining inputs in batched forward passes;
    3. shrink: each input that failed in 2 is searched on its own with the same seed, which
       regenerates the same test cases (answered from the cache) up to its first failure;
       hypothesis shrinks that and saves it to the database.
    """
    x = context.examples.x
    _check_inputs(context, params, x)
    targets = _select(context, params)
    image_size = (int(x.shape[-2]), int(x.shape[-1])) if x.dim() >= 3 else None
    specs = [spec.as_dict() for spec in params.perturbations]
    strategy = strategies.composition(specs, image_size=image_size)
    evaluator = PropertyEvaluator(
        context.model,
        targets,
        context.bounds,
        params.max_confidence_drop,
        context.examples.batch_size,
    )
    location = _database_location(params)
    database = None if location is None else DirectoryBasedExampleDatabase(location)
    search_seed = derive_seed(context.seed, context.check_name, "fuzz")
    base = settings(
        max_examples=params.max_examples,
        deadline=None,
        derandomize=False,  # the seed derandomises; derandomize=True would drop the database
        database=None,
        phases=[Phase.generate],
        suppress_health_check=SUPPRESSED,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )

    def per_input(position: int, phases: list[Phase]) -> settings:
        if database is None:
            return settings(base, phases=phases)
        namespace = f"{context.check_name}/{targets.indices[position]}"
        return settings(base, phases=phases, database=NamespacedDatabase(database, namespace))

    positions = range(len(targets.indices))
    found: dict[int, list[Perturbation]] = {}
    if database is not None:
        for i in positions:
            replayed = search_one(
                strategy, evaluator, i, per_input(i, [Phase.reuse, Phase.shrink]), search_seed
            )
            if replayed is not None:
                found[i] = replayed
    pending = [i for i in positions if i not in found]
    first = explore_all(strategy, evaluator, pending, base, search_seed) if pending else {}
    evaluator.forget_all_but([*found, *first])
    for i, unshrunk in first.items():
        shrink = per_input(i, [Phase.reuse, Phase.generate, Phase.shrink])
        found[i] = search_one(strategy, evaluator, i, shrink, search_seed) or unshrunk
    order = sorted(found, key=lambda i: targets.indices[i])
    failures = [_failure_row(evaluator, i, found[i]) for i in order]
    result = _result(context, params, targets, failures, search_seed, location)
    # Report pictures only: a saliency map per shown failure, outside `evaluations`.
    saliency = add_saliency(context, result.details.failures)
    if saliency:
        result.details.saliency_maps = saliency
    return result


def _check_inputs(context: CheckContext, params: FuzzCheck, x: torch.Tensor) -> None:
    images = {spec.kind for spec in params.perturbations} & strategies.IMAGE_KINDS
    if images and x.dim() < 3:
        raise RobustnessError(
            f"{', '.join(sorted(images))} perturbations need image inputs (C, H, W) or (H, W); "
            f"the data has inputs of shape {tuple(x.shape[1:])}"
        )
    check_perturbation_bounds(context, params)


@torch.inference_mode()
def _select(context: CheckContext, params: FuzzCheck) -> Targets:
    """The inputs to fuzz and their clean predictions (first N correct, or the given indices)."""
    indices = selected_inputs(context, params)
    x, y = context.examples.x[indices].to(context.device), context.examples.y[indices]
    logits = torch.cat(
        [context.model(part).float() for part in x.split(context.examples.batch_size)]
    )
    confidences, predictions = logits.softmax(dim=1).max(dim=1)
    return Targets(
        indices=indices,
        x=x,
        labels=y.tolist(),
        predictions=predictions,
        confidences=confidences,
    )


def _database_location(params: FuzzCheck) -> str | None:
    """The example database directory: the check's `database`, the environment, or the default."""
    if params.database is False:
        return None
    location = params.database or os.environ.get(DATABASE_ENV, str(DEFAULT_DATABASE))
    return None if location.strip().lower() in ("", "none", "off", "false") else location


def _failure_row(
    evaluator: PropertyEvaluator, position: int, found: list[Perturbation]
) -> dict[str, Any]:
    t = evaluator.targets
    outcome = evaluator.outcomes([position], found)[position]
    row: dict[str, Any] = {
        "index": t.indices[position],
        "label": t.labels[position],
        "perturbations": [p.to_dict() for p in found],
        "clean_prediction": int(t.predictions[position]),
        "clean_confidence": float(t.confidences[position]),
        "perturbed_prediction": outcome.prediction,
        "perturbed_confidence": outcome.confidence,
    }
    clean = t.x[position : position + 1]
    if clean.numel() <= PICTURED_INPUT:
        perturbed = strategies.apply_all(found, clean, evaluator.bounds)
        row.update(pixel_rows(clean[0], perturbed[0]))
    return row


def _result(
    context: CheckContext,
    params: FuzzCheck,
    targets: Targets,
    failures: list[dict[str, Any]],
    search_seed: int,
    database: str | None,
) -> CheckResult:
    fuzzed, failing = len(targets.indices), len(failures)
    value = failing / fuzzed
    passed = failing == 0
    name = params.property_name()
    if name == "max_confidence_drop":
        name = f"max_confidence_drop {format_number(params.max_confidence_drop)}"
    within = f"within {params.budget_label()}, {params.max_examples} cases per input"
    if passed:
        statement = f"{name} holds (failing_inputs = 0) {within}"
    else:
        statement = (
            f"{_first_failure(params, failures[0])}; {name} fails on {failing} of {fuzzed} inputs "
            f"(failing_inputs = {format_number(value)} exceeds max 0) {within}"
        )
    details = FuzzDetails(
        property=params.property_name(),
        max_confidence_drop=params.max_confidence_drop,
        perturbations=[spec.as_dict() for spec in params.perturbations],
        inputs=targets.indices,
        fuzzed_inputs=fuzzed,
        failing_inputs=failing,
        max_examples=params.max_examples,
        hypothesis_seed=search_seed,
        database=database,
        failures=[ExampleRow(**row) for row in failures],
    )
    return CheckResult(
        check=params.name,
        type=params.type,
        metric="failing_inputs",
        value=value,
        comparison="<=",
        threshold=0.0,
        ci=clopper_pearson(failing, fuzzed, context.confidence),
        confidence=context.confidence,
        # A counterexample is a witness, so every decision rule agrees with the point rule.
        outcome=outcome_of(passed),
        decision=context.decision,
        examples=fuzzed,
        details=details,
        statement=statement,
    )


def _first_failure(params: FuzzCheck, row: dict[str, Any]) -> str:
    under = strategies.describe_all(
        [Perturbation(p["kind"], p["params"]) for p in row["perturbations"]]
    )
    clean = f"{row['clean_prediction']} (p={row['clean_confidence']:.2f})"
    perturbed = f"{row['perturbed_prediction']} (p={row['perturbed_confidence']:.2f})"
    who = f"input {row['index']} (label {row['label']})"
    return f"{who} goes from {clean} to {perturbed} under {under}"


CHECK = CheckType(
    name="fuzz",
    params=FuzzCheck,
    run=run_fuzz,
    summary="a property (label unchanged, bounded confidence drop) holds under every perturbation "
    "hypothesis finds within a budget; failures are shrunk",
    metrics={"failing_inputs": "lower"},
    docs="fuzz.md",
    details=FuzzDetails,
    validity="robustness_checks.validity.fuzz:cases",
    gate_cases="robustness_checks.validity.gates:fuzz_cases",
    random_model="each input is judged on one draw, so a prediction that the model's own "
    "randomness changes counts as a failure of the property",
)
