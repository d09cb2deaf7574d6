"""Per-example uncertainty scores (higher = more uncertain / more likely OOD or an error)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field, model_validator

from robustness_checks.errors import RobustnessError
from robustness_checks.examples import Examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.execution.seeding import derive_seed
from robustness_checks.spec.schema import StrictModel

ScoreName = Literal[
    "msp",
    "confidence",
    "entropy",
    "expected_entropy",
    "mutual_information",
    "variation_ratio",
    "energy",
    "odin",
    "max_logit",
]
FeatureScoreName = Literal["mahalanobis", "relative_mahalanobis", "knn", "vim", "react", "ash"]
SCORE_ORIENTATION = {
    "msp": "-log max mean softmax probability (logsumexp(z) - max z for one softmax pass; "
    "ranks inputs like 1 - max softmax without ties at 0)",
    "confidence": "-log max mean softmax probability, as msp",
    "entropy": "predictive entropy H(mean_t p_t)",
    "expected_entropy": "expected entropy mean_t H(p_t)",
    "mutual_information": "mutual information (predictive minus expected entropy)",
    "variation_ratio": "1 - share of samples voting for the modal class",
    "energy": "energy -T logsumexp(logits / T)",
    "odin": "1 - max softmax(logits(x~) / T) after ODIN's input step",
    "max_logit": "-max logit",
    "mahalanobis": "min over classes of the squared Mahalanobis distance of the features",
    "relative_mahalanobis": "mahalanobis minus the distance to one Gaussian of all fit features",
    "knn": "distance to the k-th nearest fit example, on L2-normalised features",
    "vim": "alpha * norm of the features' residual off the principal subspace - logsumexp(z)",
    "react": "energy of the logits of features clipped at a percentile of the fit features",
    "ash": "energy of the logits of ASH-S-shaped features (top values kept, rescaled)",
}


LOG_SPACE_SCORES = (
    "msp",
    "confidence",
    "entropy",
    "expected_entropy",
    "mutual_information",
    "variation_ratio",
)


class UncertaintySpec(StrictModel):
    """Where predictive distributions come from: softmax, MC dropout, ensemble or Laplace."""

    method: Literal["softmax", "mc_dropout", "ensemble", "laplace"] = "softmax"
    samples: Annotated[
        int, Field(ge=1, le=10_000, description="MC dropout passes or Laplace weight draws")
    ] = 20
    hessian: Literal["kron", "diag"] | None = Field(
        None, description="laplace: Kronecker-factored (default) or diagonal GGN"
    )
    prior_precision: Annotated[float, Field(gt=0.0)] | None = Field(
        None, description="laplace: default chosen by marginal likelihood on a log grid"
    )

    @model_validator(mode="after")
    def _laplace_fields(self) -> UncertaintySpec:
        if self.method != "laplace" and (self.hessian or self.prior_precision):
            raise ValueError("hessian and prior_precision are read only by method laplace")
        return self


class ScoreOptions(StrictModel):
    """Temperature and input step for energy and ODIN scores."""

    temperature: Annotated[float, Field(gt=0.0)] | None = Field(
        None, description="default: 1 for energy, 1000 for ODIN"
    )
    epsilon: Annotated[float, Field(ge=0.0)] = Field(0.0014, description="ODIN input step")


def probabilities(
    context: CheckContext, x: torch.Tensor, uncertainty: UncertaintySpec, key: object
) -> torch.Tensor:
    """Predictive samples (T, n, classes) for `x` from the chosen sampler."""
    from robustness_checks.uncertainty.samplers import predictive_samples

    if uncertainty.method == "ensemble" and not context.ensemble:
        raise RobustnessError(
            "uncertainty method 'ensemble' needs ensemble members: list them under "
            "model.ensemble in the spec (or pass ensemble=[...] in Python)"
        )
    seed = derive_seed(context.seed, context.check_name, "dropout", key)
    laplace = fitted_laplace(context, uncertainty) if uncertainty.method == "laplace" else None
    return predictive_samples(
        context.model,
        x,
        method=uncertainty.method,
        samples=uncertainty.samples,
        ensemble=context.ensemble,
        generator_seed=seed,
        laplace=laplace,
    )


def fitted_laplace(context: CheckContext, uncertainty: UncertaintySpec) -> Any:
    """The last-layer Laplace posterior fitted on the check's fit_data, once per spec."""
    from robustness_checks.checks.common.feature_scoring import _cached, collect
    from robustness_checks.uncertainty.features import linear_head, resolve
    from robustness_checks.uncertainty.laplace import fit_laplace

    fit = context.extra_data.get("fit_data")
    if fit is None:
        raise RobustnessError(
            "uncertainty method 'laplace' needs fit_data: in-distribution examples (usually a "
            "sample of the training set) to fit the last-layer posterior on: add fit_data to "
            "the check (same forms as data)"
        )
    tap = resolve(context.model, None)
    hessian = uncertainty.hessian or "kron"

    def make() -> Any:
        logits, features = collect(context, tap, fit)
        weight, bias = linear_head(tap)
        weight, bias = weight.to(context.device), bias.to(context.device)
        phi = features.to(context.device).double()
        head = phi @ weight.T + bias
        if not torch.allclose(head, logits.to(head), rtol=2e-2, atol=2e-2):
            raise RobustnessError(
                f"uncertainty method 'laplace' puts its posterior on the last nn.Linear "
                f"({tap.path}), but the model's logits are not that layer's output"
            )
        labels = fit.y.to(context.device)
        labels = labels if bool((labels >= 0).all()) else None
        has_bias = getattr(tap.module, "bias", None) is not None
        return fit_laplace(
            phi,
            weight,
            bias if has_bias else None,
            labels,
            hessian=hessian,
            prior_precision=uncertainty.prior_precision,
        )

    return _cached(context, fit, tap, ("laplace", hessian, uncertainty.prior_precision), make)


def scores_and_predictions(
    context: CheckContext,
    examples: Examples,
    score: ScoreName,
    uncertainty: UncertaintySpec,
    options: ScoreOptions,
    key: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, predicted classes) for every example, on the CPU; scores are float64."""
    from robustness_checks.uncertainty.samplers import MEASURES

    if score in ("energy", "max_logit") or (
        uncertainty.method == "softmax" and score in LOG_SPACE_SCORES
    ):
        # From the clean logits alone: shared with the spec's other checks.
        logits = context.logits(examples)
        return _finite(_logit_score(context, None, logits, score, options), score), logits.argmax(1)

    def score_batch(indices: torch.Tensor, x: torch.Tensor, _: torch.Tensor) -> dict[str, Any]:
        if score in ("energy", "odin", "max_logit") or (
            uncertainty.method == "softmax" and score in LOG_SPACE_SCORES
        ):
            logits = _logits(context, x)
            values = _logit_score(context, x, logits, score, options)
            predictions = logits.argmax(dim=1)
        else:
            # float64 from here on; MC dropout and ensemble samples arrive as float32.
            samples = probabilities(context, x, uncertainty, (key, int(indices[0]))).double()
            predictions = samples.mean(dim=0).argmax(dim=1)
            if score in ("msp", "confidence"):
                values = -MEASURES["confidence"](samples).log()
            elif score == "entropy":
                values = MEASURES["predictive_entropy"](samples)
            else:
                values = MEASURES[score](samples)
        return {"scores": values.double(), "predictions": predictions}

    out = context.map_examples(score_batch, examples)
    return _finite(out["scores"], score), out["predictions"]


def _finite(scores: torch.Tensor, score: ScoreName) -> torch.Tensor:
    if not bool(torch.isfinite(scores).all()):
        raise RobustnessError(
            f"the {score} score is NaN or infinite for some inputs; check "
            "that the model returns finite logits"
        )
    return scores


def _logits(context: CheckContext, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return context.model(x).float()


def _logit_score(
    context: CheckContext,
    x: torch.Tensor | None,
    logits: torch.Tensor,
    score: ScoreName,
    options: ScoreOptions,
) -> torch.Tensor:
    """A score from one pass's logits, float64 (msp in log space: no ties for confident inputs)."""
    from robustness_checks.uncertainty import scores as score_functions

    z = logits.double()
    if score in ("msp", "confidence"):
        return torch.logsumexp(z, dim=1) - z.amax(dim=1)
    if score in ("entropy", "expected_entropy"):
        log_p = z.log_softmax(dim=1)
        return -(log_p.exp() * log_p).sum(dim=1)
    if score in ("mutual_information", "variation_ratio"):
        return z.new_zeros(z.shape[0])  # one softmax pass: no disagreement between samples
    if score == "max_logit":
        return -z.amax(dim=1)
    if score == "energy":
        temperature = options.temperature or 1.0
        return -temperature * torch.logsumexp(z / temperature, dim=1)
    assert x is not None, "odin perturbs the inputs"
    return score_functions.odin_score(
        context.model,
        x,
        temperature=options.temperature or 1000.0,
        epsilon=options.epsilon,
        bounds=context.bounds,
    ).double()
