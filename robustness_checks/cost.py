"""What a check will cost before it runs: at most how many forward passes (`validate --cost`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robustness_checks.checks.common.attack_spec import GRADIENT_METHODS

RANDOMNESS_PROBE = 64  # two passes over 32 examples before every check
# Per eps and example, auto's stages at most (name, passes): APGD-CE, APGD-T (standard: MALT's
# ranking pass, then 4 targets; fast and full: 9 targets), Square; rand's two stages are per
# draw of its expectation.
AUTO_STAGES = {
    "standard": (("APGD-CE", 101), ("APGD-T", 1 + 4 * 101), ("Square", 5000)),
    "fast": (("APGD-CE", 101), ("APGD-T", 9 * 26), ("Square", 300)),
    "full": (("APGD-CE", 101), ("APGD-T", 9 * 101), ("Square", 5000)),
    "rand": (("APGD-CE", 101), ("APGD-DLR", 101)),
}
AUTO_PASSES = {version: sum(n for _, n in stages) for version, stages in AUTO_STAGES.items()}


@dataclass(frozen=True)
class Cost:
    """At most `passes` forward passes over single inputs (None: not known for this type), and
    how they add up."""

    passes: int | None
    how: str

    def line(self, name: str, kind: str) -> str:
        if self.passes is None:
            return f"check {name!r} ({kind}): cost not known ({self.how})"
        return (
            f"check {name!r} ({kind}): at most {self.passes:,} forward passes ({self.how}; "
            f"+ {RANDOMNESS_PROBE} for the randomness probe)"
        )


def attack_passes(attack: Any, examples: int) -> tuple[int, str]:
    """At most how many passes an `attack` block makes on `examples` examples, and how."""
    eps = len(attack.eps_list())
    eot = attack.eot or 1
    steps = attack.resolved_steps or 1
    method = attack.method
    if method == "auto":
        draws = eot if attack.version == "rand" else 1
        per = AUTO_PASSES[attack.version] * draws
        stages = " + ".join(f"{name} {n * draws:,}" for name, n in AUTO_STAGES[attack.version])
        return examples * (1 + eps * per), f"{examples} x (1 + {eps} eps x ({stages}))"
    if method == "fgsm":
        per = 2
    elif method in ("pgd", "apgd"):
        copies = attack.targeted if method == "apgd" and isinstance(attack.targeted, int) else 1
        per = copies * attack.restarts * (steps + 1)
    elif method == "square":
        per = attack.queries
    else:
        per = attack.restarts
    judged = (eps + 1) * attack.draws if attack.eot is not None else 0
    total = examples * (eot * (1 + eps * per) + judged)
    how = f"{examples} x ({eot} x (1 + {eps} eps x {per:,}) + {judged} judging)"
    return total, how if attack.eot is not None else f"{examples} x (1 + {eps} eps x {per:,})"


def samples_of(check: Any, members: int) -> int:
    """Forward passes per example of the check's uncertainty sampler (`members`: the spec's
    ensemble members)."""
    uncertainty = getattr(check, "uncertainty", None)
    if uncertainty is None or uncertainty.method in ("softmax", "laplace"):
        return 1
    if uncertainty.method == "ensemble":
        return max(members, 1)
    return int(uncertainty.samples or 1)


def inputs_of(check: Any) -> int:
    """How many inputs a check that selects inputs (noise, fuzz) studies."""
    return len(check.indices) if check.indices else check.inputs or type(check).default_inputs


def check_cost(check: Any, examples: int, members: int = 0) -> Cost:
    """At most how many forward passes `check` makes on `examples` examples (`members`: the
    spec's ensemble members)."""
    if check.limit is not None:
        examples = min(examples, check.limit)
    kind = check.type
    if kind == "adversarial":
        passes, how = attack_passes(check.attack, examples)
        probed = check.gradient_masking == "fail" and check.attack.method in GRADIENT_METHODS
        probe = int(check.probe_budget * passes) if probed else 0
        how += f"; masking probe <= {probe:,}" if probed else ""
        return Cost(passes + probe + RANDOMNESS_PROBE, how)
    if kind == "entropy_trend":
        passes, how = attack_passes(check.attack.model_copy(update={"eps": check.eps}), examples)
        sampled = examples * len(check.eps) * samples_of(check, members)
        return Cost(passes + sampled + RANDOMNESS_PROBE, f"{how}; {sampled:,} sampling")
    if kind == "noise":
        inputs = inputs_of(check)
        passes = inputs * check.max_evaluations + min(examples, 1024)
        return Cost(passes + RANDOMNESS_PROBE, f"{inputs} inputs x {check.max_evaluations:,}")
    if kind == "fuzz":
        inputs = inputs_of(check)
        passes = inputs * check.max_examples * 2 + examples
        return Cost(passes + RANDOMNESS_PROBE, f"{inputs} inputs x {check.max_examples} x 2")
    if kind in ("calibration", "selective", "failure_prediction", "ood"):
        # ODIN perturbs each input along its gradient: a forward, a backward and a forward.
        per = samples_of(check, members) * (3 if getattr(check, "score", None) == "odin" else 1)
        extra = " + the same per ood input, + a feature detector's fit" if kind == "ood" else ""
        return Cost(examples * per + RANDOMNESS_PROBE, f"{examples} x {per}{extra}")
    return Cost(None, f"check type {kind!r} states no cost")
