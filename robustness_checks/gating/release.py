"""Release comparison: is a candidate model not worse than the released one, on paired examples."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustness_checks.examples import as_examples
from robustness_checks.execution.context import CheckContext
from robustness_checks.loading.device import resolve_device
from robustness_checks.metrics.intervals import clopper_pearson
from robustness_checks.results import CheckResult, format_number, outcome_of


def paired_difference_interval(
    gains: int, losses: int, total: int, confidence: float
) -> tuple[float, float]:
    """Interval of (gains - losses) / total, conditional on the discordant pairs (McNemar-style).

    Given d = gains + losses discordant examples, gains ~ Binomial(d, q) and the difference is
    (d / total) (2q - 1); the exact Clopper-Pearson interval of q maps onto it.
    """
    discordant = gains + losses
    if discordant == 0:
        return 0.0, 0.0
    low, high = clopper_pearson(gains, discordant, confidence)
    share = discordant / total
    return share * (2 * low - 1), share * (2 * high - 1)


def compare_accuracy(
    candidate: nn.Module,
    released: nn.Module,
    data: Any,
    *,
    max_loss: float = 0.0,
    confidence: float = 0.95,
    attack: dict[str, Any] | None = None,
    device: str | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
    batch_size: int = 256,
    name: str = "release-comparison",
) -> CheckResult:
    """Accuracy of `candidate` minus that of `released` on the same examples, with a paired
    interval. Passes when the whole interval lies above `-max_loss` (non-inferiority at
    `confidence`). With `attack` (fields of the YAML attack block, eps a number), robust
    accuracies under that attack are compared instead.
    """
    from scipy import stats

    examples = as_examples(data, batch_size)
    target = resolve_device(device)
    right = []
    for model in (candidate, released):
        context = CheckContext.create(model, examples, target, name, seed=seed, bounds=bounds)
        right.append(_correct(context, attack))
    cand, rel = right
    gains = int((cand & ~rel).sum())
    losses = int((~cand & rel).sum())
    total = len(cand)
    difference = (gains - losses) / total
    ci = paired_difference_interval(gains, losses, total, confidence)
    passed = ci[0] >= -max_loss
    exact = stats.binomtest(gains, gains + losses).pvalue if gains + losses else 1.0
    what = "accuracy" if attack is None else f"accuracy under {attack.get('method', 'pgd')}"
    statement = (
        f"candidate {what} {format_number(cand.float().mean().item())} vs released "
        f"{format_number(rel.float().mean().item())}: difference {format_number(difference)} "
        f"({100 * confidence:g}% paired CI {format_number(ci[0])} to {format_number(ci[1])}; "
        f"{gains} gained, {losses} lost) {'is not' if passed else 'may be'} worse than "
        f"-{format_number(max_loss)}"
    )
    return CheckResult(
        check=name,
        type="release_comparison",
        metric="accuracy_difference",
        value=difference,
        comparison=">=",
        threshold=-max_loss,
        ci=ci,
        confidence=confidence,
        outcome=outcome_of(passed),
        examples=total,
        statement=statement,
        details={
            "gains": gains,
            "losses": losses,
            "candidate_accuracy": float(cand.float().mean()),
            "released_accuracy": float(rel.float().mean()),
            "mcnemar_exact_p": exact,
        },
    )


def _correct(context: CheckContext, attack: dict[str, Any] | None) -> torch.Tensor:
    if attack is None:
        return (context.logits().argmax(dim=1) == context.examples.y).cpu()
    from robustness_checks.attacks import run_attack

    options = dict(attack)
    eps = options.pop("eps")

    def attack(indices: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        result = run_attack(
            context.model,
            x,
            y,
            eps=eps,
            bounds=context.bounds,
            generator=context.example_stream("attack", indices),
            **options,
        )
        return {"correct": (result.predictions[-1] == y) & (result.clean_predictions == y)}

    return context.map_examples(attack)["correct"]
