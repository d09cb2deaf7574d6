"""The `adversarial` check: accuracy, or its drop, under an attack or random perturbations."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from robustness_checks.checks.adversarial_counts import Tally, decide_counts
from robustness_checks.checks.adversarial_details import (
    AdversarialDetails,
    RandomModelAttack,
)
from robustness_checks.checks.check_type import CheckType
from robustness_checks.checks.common.attack_spec import AttackSpec
from robustness_checks.checks.common.bounds import check_perturbation_bounds
from robustness_checks.checks.common.inputs import pixel_rows
from robustness_checks.checks.common.masking import add_stages, judge_masking
from robustness_checks.checks.common.masking_probe import run_probe, skip_reason, wants_probe
from robustness_checks.checks.common.report_data import add_saliency
from robustness_checks.checks.common.sequential import Bound, run_until_settled, settled_bounds
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.watch import CheckTimeout
from robustness_checks.results import CheckResult
from robustness_checks.spec.schema import CheckSpec, Probability


class AdversarialCheck(CheckSpec):
    """Parameters of an `adversarial` check."""

    type: Literal["adversarial"]
    attack: AttackSpec
    max_drop: Probability | list[Probability] | None = Field(
        None, description="largest allowed clean minus adversarial accuracy (one, or one per eps)"
    )
    min_accuracy: Probability | list[Probability] | None = Field(
        None, description="smallest allowed accuracy under attack (one, or one per eps)"
    )
    failing_examples: Annotated[int, Field(ge=0)] = Field(
        8, description="how many fooled examples to keep in details"
    )
    gradient_masking: Literal["fail", "warn", "off"] = Field(
        "fail",
        description="on signs of gradient masking: fail a passing check (after the Square "
        "probe), only warn (dead gradients, no probe), or off (neither)",
    )
    probe_budget: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        0.25,
        description="the masking probe's most forward passes, as a share of the attack's",
    )
    sequential: bool = Field(
        False,
        description="evaluate in a seeded random order and stop once every bound is settled "
        "(anytime-valid); details.examples_used",
    )

    @field_validator("gradient_masking", mode="before")
    @classmethod
    def _off_is_false_in_yaml(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false

    @model_validator(mode="after")
    def _bounds_fit_eps(self) -> AdversarialCheck:
        count = len(self.attack.eps_list())
        if count == 0:
            raise ValueError("attack.eps is required: a number or a list of numbers")
        for name in ("max_drop", "min_accuracy"):
            bound = getattr(self, name)
            if isinstance(bound, list) and len(bound) != count:
                raise ValueError(
                    f"{name} has {len(bound)} values but attack.eps has {count}; give one "
                    "value for every eps, or a single value for all"
                )
        return self

    def per_eps(self, name: str) -> list[float | None]:
        bound = getattr(self, name)
        count = len(self.attack.eps_list())
        return list(bound) if isinstance(bound, list) else [bound] * count


def run_adversarial(context: CheckContext, params: AdversarialCheck) -> CheckResult:
    """Attack every example at every eps in one run per batch and compare with the bounds."""
    from robustness_checks.attacks import run_attack

    eps = params.attack.eps_list()
    check_perturbation_bounds(context, params)
    wanted = params.failing_examples
    random = context.random_model or params.attack.treats_as_random()
    spec = params.attack.for_model(random)
    shares = random and spec.random_accuracy == "expected"

    # Failing examples still to pick: batches run in order, so once the first ones are found
    # later batches keep no pictures (streamed data would otherwise hold some per batch).
    unpicked = [wanted]

    def attack(indices: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        result = run_attack(
            context.model,
            x,
            y,
            eps=eps,
            bounds=context.bounds,
            generator=context.example_stream("attack", indices),
            **spec.run_options(),
        )
        clean, robust, clean_values, robust_values = _correct(result, y, shares)
        # One host sync a batch: keep only fooled rows, never filler, so a pass over many
        # batches holds at most `wanted` pictures.
        fooled = int((clean & ~robust[-1]).sum()) if unpicked[0] else 0
        found = _failure_candidates(result, x, clean, robust, min(unpicked[0], fooled))
        unpicked[0] -= min(unpicked[0], fooled)
        zero = result.zero_gradients
        stages = getattr(result, "stages", [])
        return {
            "clean": clean_values,
            "robust": robust_values.T,  # (examples, eps)
            **{f"failure_{key}": value for key, value in found.items()},
            "failure_index": indices.to(found["position"].device)[found["position"]],
            "passes": [(result.forward_passes, result.backward_passes, result.gradient_examples)],
            "zero_gradients": (torch.zeros(()) if zero is None else zero).reshape(1),
            "stage_broken": torch.stack([s.broken for s in stages]).unsqueeze(0)
            if stages
            else torch.zeros(1, 0, len(eps)),
            "stages": [[(s.name, s.forward_passes, s.backward_passes) for s in stages]],
        }

    bounds = _bounds(params, eps)
    if params.sequential:
        out, used = run_until_settled(context, attack, bounds, signed=shares)
        robust_last = torch.zeros(len(context.examples), dtype=torch.bool)
        robust_last[used] = out["robust"][:, -1].cpu() >= 0.5
        settled = settled_bounds(out, bounds, context.confidence, signed=shares)
    else:
        try:
            out = context.map_examples(attack)
        except CheckTimeout as timeout:
            timeout.figures = _finished_figures(timeout.finished, eps)
            raise
        robust_last, settled = out["robust"][:, -1] >= 0.5, None
    clean_values = out["clean"].double().cpu()
    robust_values = out["robust"].double().cpu()
    tally = Tally(
        examples=len(out["clean"]),
        clean_correct=_total(clean_values),
        robust_correct=[_total(column) for column in robust_values.T],
        forward_passes=sum(passes[0] for passes in out["passes"]),
        backward_passes=sum(passes[1] for passes in out["passes"]),
        zero_gradients=int(out["zero_gradients"].sum()),
        gradient_examples=sum(passes[2] for passes in out["passes"]),
        shares=(clean_values.numpy(), robust_values.numpy()) if shares else None,
    )
    found = {key[8:]: value for key, value in out.items() if key.startswith("failure_")}
    failures = _failure_rows(found, context.examples.y, eps[-1], params.attack.norm, wanted)
    bounded = any(
        b is not None for b in params.per_eps("max_drop") + params.per_eps("min_accuracy")
    )
    result = decide_counts(context.judging, params, eps, tally, failures, settled, spec)
    robust_share = tally.robust_correct[-1] / max(tally.examples, 1)
    probe = None
    if wants_probe(spec, bounded):
        budget = math.floor(params.probe_budget * tally.forward_passes)
        reason = skip_reason(params.gradient_masking, result.outcome)
        probe = {"budget": budget, "evaluations": 0, "stopped": f"not run: {reason}"}
        if reason is None:
            probe = run_probe(context, spec, robust_last, budget=budget, robust_share=robust_share)
    if random:
        result.details.random_model = RandomModelAttack(
            eot=spec.eot or 1, draws=spec.draws, accuracy=spec.random_accuracy
        )
    # Report pictures only: a saliency map per shown failing example, outside `evaluations`.
    saliency = add_saliency(context, result.details.failing_examples)
    if saliency:
        result.details.saliency_maps = saliency
    if params.sequential:
        result.details.examples_used = tally.examples
        result.details.sequential = {
            f"{metric} eps={eps[i]:g}": verdict for (i, metric), (verdict, _) in settled.items()
        }
    if out["stages"] and out["stages"][0]:
        add_stages(result, eps, out["stages"], out["stage_broken"], tally.robust_correct[-1])
    if params.gradient_masking == "off":
        result.details.masking_probe = probe
        result.details.gradient_masking = {"action": "off", "evidence": []}
        return result
    judge_masking(
        result,
        spec,
        params.gradient_masking,
        probe,
        zero=tally.zero_gradients,
        gradient_examples=tally.gradient_examples,
        misclassified=tally.examples - tally.clean_correct,
        robust_share=robust_share,
    )
    return result


def _bounds(params: AdversarialCheck, eps: list[float]) -> list[Bound]:
    """Every (eps index, metric, comparison, threshold) the check bounds."""
    found: list[Bound] = []
    for i, (max_drop, min_accuracy) in enumerate(
        zip(params.per_eps("max_drop"), params.per_eps("min_accuracy"), strict=True)
    ):
        if max_drop is not None:
            found.append((i, "accuracy_drop", "<=", max_drop))
        if min_accuracy is not None:
            found.append((i, "adversarial_accuracy", ">=", min_accuracy))
    return found


def _correct(
    result: Any, y: torch.Tensor, shares: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per example: correct on the clean input and robust (eps, n), as booleans, and the values
    that are counted: the booleans as floats, or for a random model counted by expected
    accuracy, the shares of correct fresh draws. A random model's example is correct when at
    least half of its draws are; robust counts only examples correct on the clean input,
    except under expected accuracy, where each point counts its own share."""
    if result.expected_accuracy is None:
        clean = result.clean_predictions == y
        robust = (result.predictions == y) & clean
    else:
        clean = result.clean_expected_accuracy >= 0.5
        robust = (result.expected_accuracy >= 0.5) & clean
    if shares:
        return clean, robust, result.clean_expected_accuracy, result.expected_accuracy
    return clean, robust, clean.float(), robust.float()


def _total(values: torch.Tensor) -> float:
    """A sum of per-example values: an int when they are 0/1 counts."""
    total = float(values.sum())
    return int(total) if total.is_integer() else total


def _failure_candidates(
    result: Any, x: torch.Tensor, clean: torch.Tensor, robust: torch.Tensor, limit: int
) -> dict[str, torch.Tensor]:
    """The batch's first `limit` examples fooled at the largest eps, as fixed-size tensors.

    Chosen on the device without reading anything back to the host; rows whose `fooled` is
    False are filler for batches with fewer fooled examples.
    """
    fooled = clean & ~robust[-1]
    first = torch.argsort((~fooled).to(torch.uint8), stable=True)[:limit]
    return {
        "fooled": fooled[first],
        "position": first,
        "x": x[first],
        "adversarial": result.adversarial[-1, first],
        "clean_probabilities": result.clean_logits[first].softmax(dim=1),
        "probabilities": result.logits[-1, first].softmax(dim=1),
    }


def _failure_rows(
    found: dict[str, torch.Tensor],
    labels: torch.Tensor,
    eps: float,
    norm: str,
    limit: int,
) -> list[dict[str, Any]]:
    """Report rows of the first `limit` fooled examples (right on clean input, wrong at eps)."""
    rows = []
    for k in found["fooled"].nonzero().flatten()[:limit].tolist():
        x, adversarial = found["x"][k], found["adversarial"][k]
        index = int(found["index"][k])
        perturbation = adversarial - x
        clean, attacked = found["clean_probabilities"][k], found["probabilities"][k]
        row = {
            "index": index,
            "label": int(labels[index]),
            "eps": eps,
            "norm": norm,
            "clean_prediction": int(clean.argmax()),
            "clean_confidence": float(clean.max()),
            "adversarial_prediction": int(attacked.argmax()),
            "adversarial_confidence": float(attacked.max()),
            "perturbation_norm": float(
                perturbation.flatten().norm(p=float("inf") if norm == "inf" else 2)
            ),
        }
        rows.append({**row, **pixel_rows(x, adversarial)})
    return rows


CHECK = CheckType(
    name="adversarial",
    params=AdversarialCheck,
    run=run_adversarial,
    summary="accuracy or accuracy drop under FGSM / PGD / APGD / Square / AutoAttack (L-inf, "
    "L2) or random perturbations, with a gradient masking check",
    metrics={"adversarial_accuracy": "higher", "accuracy_drop": "lower"},
    plot="robustness_checks.reporting.plots:accuracy_against_eps",
    docs="adversarial.md",
    flattened="attack",
    details=AdversarialDetails,
    validity="robustness_checks.validity.adversarial:cases",
    gate_cases="robustness_checks.validity.gates:adversarial_cases",
    random_model="accuracy is an expectation over the model's randomness: gradient attacks "
    "average the logits of eot draws per step (auto runs its rand version), points are kept by "
    "loss and judged by fresh draws, and intervals cover examples and draws "
    "(details.random_model)",
)


def _finished_figures(finished: dict[str, Any], eps: list[float]) -> dict[str, float]:
    """Clean and robust accuracy of the examples a timed-out attack had finished."""
    if not finished:
        return {}
    robust = finished["robust"].double().cpu()
    figures = {"clean accuracy": float(finished["clean"].double().mean())}
    for column, value in enumerate(eps):
        figures[f"accuracy at eps {value:g}"] = float(robust[:, column].mean())
    return figures
