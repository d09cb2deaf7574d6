"""The Square probe for gradient masking: within a budget, stopped once its answer is settled."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from robustness_checks.checks.common.attack_spec import GRADIENT_METHODS, AttackSpec
from robustness_checks.checks.common.masking import BROKEN_SHARE, MIN_BROKEN, suspected
from robustness_checks.examples import Examples
from robustness_checks.execution.context import CheckContext

# On at most PROBE_EXAMPLES examples that the check's gradient attack left robust at its largest
# eps: a PROBE_STEPS-step APGD-CE (so a merely weak attack such as FGSM is not taken for
# masking), then Square with up to PROBE_QUERIES queries (at least MIN_QUERIES) on those still
# robust, as many examples and queries as the budget pays for.
PROBE_EXAMPLES = 64
PROBE_STEPS = 25
PROBE_QUERIES = 500
MIN_QUERIES = 100
MIN_PROBED = MIN_BROKEN + 2  # fewer examples could never show more than MIN_BROKEN broken
# Passes per probed example besides Square's queries: APGD's clean pass, steps and last point,
# and Square's clean pass.
OVERHEAD = PROBE_STEPS + 3
CHUNKS = 4  # the probe looks at its count after each quarter of its examples


@dataclass(frozen=True)
class ProbePlan:
    """How many examples the probe attacks and how many Square queries each gets."""

    examples: int
    queries: int

    @property
    def most_passes(self) -> int:
        return self.examples * (OVERHEAD + self.queries)

    @property
    def needed(self) -> int:
        """Square breaks needed for masking over the whole plan."""
        return math.floor(max(MIN_BROKEN, BROKEN_SHARE * self.examples)) + 1


def plan_probe(candidates: int, budget: int) -> ProbePlan:
    """The most examples (up to PROBE_EXAMPLES) that `budget` forward passes pay for at
    MIN_QUERIES each, then the queries (up to PROBE_QUERIES) the budget leaves per example."""
    examples = min(candidates, PROBE_EXAMPLES, budget // (OVERHEAD + MIN_QUERIES))
    if examples == 0:
        return ProbePlan(0, 0)
    return ProbePlan(examples, min(PROBE_QUERIES, budget // examples - OVERHEAD))


def wants_probe(attack: AttackSpec, bounded: bool) -> bool:
    """The probe runs for an untargeted gradient attack (or APGD-T) in a check with a bound."""
    top_n = attack.method == "apgd" and isinstance(attack.targeted, int)
    return bounded and attack.method in GRADIENT_METHODS and (attack.targeted is None or top_n)


def skip_reason(action: str, outcome: str) -> str | None:
    """Why the probe would not change anything, or None when it could."""
    if action == "off":
        return "gradient_masking: off"
    if action == "warn":
        return "gradient_masking: warn (the verdict stands; dead gradients still warn)"
    if outcome == "failed":
        return "the check fails its bound anyway"
    return None


def run_probe(
    context: CheckContext,
    attack: AttackSpec,
    robust: torch.Tensor,
    *,
    budget: int,
    robust_share: float,
) -> dict[str, Any]:
    """Attack a seeded sample of the examples `robust` (bool per example) marks, at the largest
    eps: APGD-CE, then Square on those it left robust, a quarter of the sample at a time,
    stopping once masking is shown or can no longer be. Every draw comes from per-example
    streams, so the outcome depends neither on batches nor on processes."""
    eps = attack.eps_list()[-1]
    candidates = robust.nonzero().flatten()
    plan = plan_probe(len(candidates), budget)
    probe: dict[str, Any] = {
        "eps": eps,
        "budget": budget,
        "probed": 0,
        "gradient_broken": 0,
        "broken": 0,
        "steps": PROBE_STEPS,
        "queries": plan.queries,
        "evaluations": 0,
        "suspected": False,
    }
    if plan.examples < MIN_PROBED:
        probe["stopped"] = (
            f"not run: the budget of {budget:,} forward passes pays for {plan.examples} of "
            f"{len(candidates)} robust examples, fewer than {MIN_PROBED}"
        )
        return probe
    order = context.numpy_rng("masking_probe").permutation(len(candidates))[: plan.examples]
    pick = candidates[torch.as_tensor(order, dtype=torch.long)]
    step = math.ceil(plan.examples / CHUNKS)
    probe["stopped"] = "every planned example probed"
    for start in range(0, plan.examples, step):
        part = pick[start : start + step].sort().values
        found = _attack(context, attack, part, eps, plan.queries)
        for key in ("gradient_broken", "broken", "evaluations"):
            probe[key] += found[key]
        probe["probed"] += len(part)
        left = plan.examples - probe["probed"]
        if probe["broken"] >= plan.needed:
            probe["stopped"] = "settled: enough examples broken to show masking"
            break
        if probe["broken"] + left < plan.needed:
            probe["stopped"] = "settled: too few examples left to show masking"
            break
    probe["suspected"] = probe["broken"] >= plan.needed and suspected(
        probe["broken"], probe["probed"], robust_share
    )
    return probe


def _attack(
    context: CheckContext, attack: AttackSpec, pick: torch.Tensor, eps: float, queries: int
) -> dict[str, int]:
    """APGD-CE, then Square on the examples it left robust, on the examples `pick`."""
    from robustness_checks.attacks import run_attack

    examples = context.examples
    sample = Examples(examples.x[pick], examples.y[pick], examples.batch_size)
    options = {"eps": eps, "norm": attack.norm, "bounds": context.bounds}
    # A random model: APGD with the check's expectation over draws, Square with one draw per
    # query, both judged by fresh draws (success: misclassified by most of them).
    apgd_random = {} if attack.eot is None else {"eot": attack.eot, "draws": attack.draws}
    square_random = {} if attack.eot is None else {"eot": 1, "draws": attack.draws}

    def work(positions: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        indices = pick[positions]
        first = run_attack(
            context.model,
            x,
            y,
            method="apgd",
            steps=PROBE_STEPS,
            early_stop=True,
            generator=context.example_stream("masking_probe_apgd", indices),
            **options,
            **apgd_random,
        )
        left = (~first.success[0]).nonzero().squeeze(1)
        passes = first.forward_passes
        broken = torch.zeros(1, dtype=torch.long, device=x.device)
        if left.numel():
            second = run_attack(
                context.model,
                x[left],
                y[left],
                method="square",
                queries=queries,
                generator=context.example_stream("masking_probe_square", indices[left.cpu()]),
                **options,
                **square_random,
            )
            broken += second.success[0].sum()
            passes += second.forward_passes
        return {"gradient_broken": [len(y) - left.numel()], "broken": broken, "passes": [passes]}

    out = context.map_examples(work, sample)
    return {
        "gradient_broken": int(sum(out["gradient_broken"])),
        "broken": int(out["broken"].sum()),
        "evaluations": int(sum(out["passes"])),
    }
