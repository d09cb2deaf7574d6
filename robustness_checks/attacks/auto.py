"""`method: auto`: AutoAttack-style worst case per example over APGD-CE, APGD-T and Square."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustness_checks.attacks.apgd import (
    top_targets,
)
from robustness_checks.attacks.arguments import check_inputs, check_int
from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, eval_mode
from robustness_checks.attacks.expectation import (
    DEFAULT_DRAWS,
    DEFAULT_EOT,
    Expectation,
    Judged,
    judge,
)
from robustness_checks.attacks.regions import (
    Bounds,
    NormName,
    RandomSource,
    parse_norm,
    unit_noise,
)
from robustness_checks.attacks.result import AttackResult
from robustness_checks.attacks.stage import run_stage
from robustness_checks.attacks.targets import malt_targets
from robustness_checks.errors import ModelOutputError
from robustness_checks.execution.random_streams import ExampleStream
from robustness_checks.execution.seeding import derive_seed

AutoVersion = Literal["standard", "fast", "full", "rand"]
VERSIONS: tuple[str, ...] = get_args(AutoVersion)
# `full` is AutoAttack's budget (Croce and Hein 2020) without FAB-T: 9 targets by clean logit,
# 5000 Square queries for every row. `standard` attacks MALT's 4 nearest targets (Melamed et al.
# 2024), and its Square stops on a row whose margin is still above 0.3 of its start after 500
# queries or that has refused 300 proposals in a row: within 0.5 points of `full` at a quarter
# or less of its passes (benchmarks/README.md, "auto at real scale"). `fast` keeps APGD-CE and
# the 9 targets and cuts APGD-T's steps and Square's queries.


@dataclass(frozen=True)
class Budget:
    """What one version spends: APGD-CE steps, APGD-T targets (ranked by clean logit or MALT)
    and steps, Square queries, and when Square retires a row (see `square`)."""

    steps: int
    targets: int
    ranking: Literal["logits", "malt"]
    targeted_steps: int
    queries: int
    retire: tuple[tuple[int, float], ...] = ()
    stall: int | None = None


BUDGETS: dict[str, Budget] = {
    "standard": Budget(100, 4, "malt", 100, 5000, retire=((500, 0.3),), stall=300),
    "fast": Budget(100, 9, "logits", 25, 300),
    "full": Budget(100, 9, "logits", 100, 5000),
}
RAND_STEPS = 100  # `rand`: APGD-CE and APGD-DLR, each with expectation over `eot` draws


@dataclass(frozen=True)
class Stage:
    """One attack of the sequence: a name for reports and its `run_attack` options."""

    name: str
    options: dict[str, Any]


@dataclass
class StageOutcome:
    """What one stage did: `broken` (len(eps),) counts the examples it fooled first, per eps."""

    name: str
    options: dict[str, Any]
    broken: Tensor
    forward_passes: int = 0
    backward_passes: int = 0
    zero_gradients: Tensor | None = None
    gradient_examples: int = 0

    def add(self, ev: Evaluator) -> None:
        """Count the passes of one of the stage's runs and its first-gradient diagnostic."""
        self.forward_passes += ev.forward_passes
        self.backward_passes += ev.backward_passes
        if ev.zero_gradients is not None:
            found = ev.zero_gradients
            self.zero_gradients = (
                found if self.zero_gradients is None else self.zero_gradients + found
            )
            self.gradient_examples += ev.gradient_examples


@dataclass(repr=False)
class AutoAttackResult(AttackResult):
    """An `AttackResult` of `method='auto'`, with what each stage broke and cost (`stages`)."""

    stages: list[StageOutcome] = field(default_factory=list)


def auto_stages(version: str, classes: int) -> list[Stage]:
    """The attacks of `version` for a `classes`-way model, in the order they run.

    standard: APGD-CE (100 steps), APGD-T (targeted DLR, the min(4, classes - 1) classes of
    nearest linearised boundary (MALT), 100 steps), Square (5000 queries; a row still above 0.3
    of its start margin after 500, or refusing 300 proposals in a row, stops). full: APGD-CE,
    APGD-T on the min(9, classes - 1) most likely other classes, Square with 5000 queries for
    every row. fast: full's with 25 APGD-T steps and 300 Square queries.
    With 3 classes the second stage is untargeted APGD-DLR; with 2 it is left out (the DLR
    losses need 3 and 4 classes). rand (AutoAttack's for random models): APGD-CE and untargeted
    APGD-DLR, 100 steps each (run on the model's logits averaged over draws).
    """
    if version == "rand":
        stages = [Stage("APGD-CE", {"method": "apgd", "loss": "ce", "steps": RAND_STEPS})]
        if classes >= 3:
            stages.append(Stage("APGD-DLR", {"method": "apgd", "loss": "dlr", "steps": RAND_STEPS}))
        return stages
    if version not in BUDGETS:
        raise ValueError(f"unknown auto version {version!r}: use one of {', '.join(VERSIONS)}")
    budget = BUDGETS[version]
    stages = [Stage("APGD-CE", {"method": "apgd", "loss": "ce", "steps": budget.steps})]
    targeted = {"method": "apgd", "loss": "dlr", "steps": budget.targeted_steps}
    if classes >= 4:
        targets = min(budget.targets, classes - 1)
        stages.append(Stage("APGD-T", {**targeted, "targeted": targets, "ranking": budget.ranking}))
    elif classes == 3:
        stages.append(Stage("APGD-DLR", targeted))
    square = {"method": "square", "queries": budget.queries, "retire": budget.retire}
    stages.append(Stage("Square", {**square, "stall": budget.stall}))
    return stages


def stage_generator(generator: RandomSource, stage: str, subset: Tensor) -> RandomSource:
    """The random source of `stage` on the examples at positions `subset`: for an ExampleStream,
    a stream keyed by (its key, stage) over those examples' indices, so a stage draws the same
    numbers for an example whichever other examples it attacks; otherwise `generator` itself."""
    if isinstance(generator, ExampleStream):
        key = derive_seed(generator.key, "auto", stage)
        return ExampleStream(key, generator.indices.index_select(0, subset.to(generator.device)))
    return generator


def run_auto(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: Sequence[float],
    norm: Literal["inf", 2] | float | str = "inf",
    version: AutoVersion = "standard",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    generator: RandomSource = None,
    max_batch: int | None = None,
    eot: int | None = None,
    draws: int = DEFAULT_DRAWS,
) -> AutoAttackResult:
    """Per eps and example, the worst case over the stages of `version` (see `auto_stages`).

    Each stage runs, with early stop, only on the (eps, example) rows that are classified
    correctly and that no earlier stage fooled, one run per eps; a row keeps the first
    adversarial point found, else the point of highest cross-entropy. A stage runs the engine
    of `run_attack(**stage.options, early_stop=True)` on those rows (see `run_stage`), with
    three savings that leave its results as they were: it starts from the clean logits of
    auto's one clean pass instead of making its own; APGD rows whose input gradient is zero or
    not finite at the start point stop there (`apgd`'s `retire_dead`: their steps could not
    move them; on a saturated softmax that is nearly every row of APGD-CE, and the
    scale-invariant APGD-T breaks them); and APGD-T attacks its targets one after another,
    each on the rows still robust (as AutoAttack's own APGD-T does), all from the random start
    that the all-targets run would draw. So the robust accuracy is never above that of a stage
    run alone with the same random streams (each stage's stream comes from
    `stage_generator`). `loss` of the result is the cross-entropy to the label; `success`
    means misclassified. `forward_passes` counts every input the model saw, the clean pass and
    the stages' passes (per stage in `stages`).
    A random model (`eot` given; version 'rand' defaults it to 20): every stage attacks the
    logits averaged over `eot` draws, on every example, keeping points by loss alone (see
    `run_attack`'s eot); a row leaves the later stages once the averaged logits misclassify its
    point. `draws` fresh passes then judge the kept points (`expected_accuracy`).
    """
    eps_list = [float(e) for e in eps]
    norm_name = parse_norm(norm)
    bounds = check_inputs(x, y, bounds, generator, max_batch)
    if version == "rand" and eot is None:
        eot = DEFAULT_EOT
    random_model = eot is not None
    if random_model:
        check_int("eot", eot, 1)
        check_int("draws", draws, 1)
    attacked = Expectation(model, eot) if random_model else model
    with eval_mode(model), torch.inference_mode(False):
        x = x.clone() if x.is_inference() else x.detach()
        y = y.to(device=x.device, dtype=torch.long)
        if bounds is not None and bool(((x < bounds[0]) | (x > bounds[1])).any()):
            raise ValueError(f"x has values outside bounds {bounds}")
        ev = Evaluator(attacked, eot or 1)
        clean_logits = ev(x).detach()
        if not bool(torch.isfinite(clean_logits).all()):
            raise ModelOutputError("the model returned non-finite logits on the clean inputs")
        worst = _Worst(x, y, clean_logits, len(eps_list), attack_all=random_model)
        attack = _Stages(attacked, worst, norm_name, bounds, generator, max_batch, eot)
        outcomes = []
        for stage in auto_stages(version, clean_logits.shape[1]):
            broken = torch.zeros(len(eps_list), dtype=torch.long, device=x.device)
            outcome = StageOutcome(stage.name, stage.options, broken)
            for row, e in enumerate(eps_list):
                attack(stage, outcome, row, e)
            outcomes.append(outcome)
        judged = Judged()
        if random_model:
            judged = judge(model, x, y, worst.adversarial, draws, max_batch)
    zero = [o.zero_gradients for o in outcomes if o.zero_gradients is not None]
    return AutoAttackResult(
        method="auto",
        norm=norm_name,
        eps=eps_list,
        adversarial=worst.adversarial,
        logits=worst.logits,
        loss=worst.loss(),
        success=worst.fooled if judged.expected is None else judged.expected < 0.5,
        clean_logits=clean_logits,
        targets=None,
        forward_passes=ev.forward_passes
        + sum(o.forward_passes for o in outcomes)
        + judged.forward_passes,
        backward_passes=sum(o.backward_passes for o in outcomes),
        zero_gradients=sum(zero[1:], zero[0]) if zero else None,
        gradient_examples=sum(o.gradient_examples for o in outcomes),
        eot=eot,
        expected_accuracy=judged.expected,
        clean_expected_accuracy=judged.clean,
        stages=outcomes,
    )


class _Worst:
    """Per (eps, example): the worst point so far, its logits and whether it is misclassified."""

    def __init__(
        self, x: Tensor, y: Tensor, clean_logits: Tensor, count: int, attack_all: bool = False
    ) -> None:
        """`attack_all`: every example starts robust, misclassified ones too (a random model's
        misclassified example may still be right on some draws, and the attack lowers that)."""
        self.x, self.y, self.clean_logits = x, y, clean_logits
        self.adversarial = x.unsqueeze(0).repeat(count, *([1] * x.ndim))
        self.logits = clean_logits.unsqueeze(0).repeat(count, 1, 1)
        fooled = clean_logits.argmax(dim=1) != y
        if attack_all:
            fooled = torch.zeros_like(fooled)
        self.fooled = fooled.unsqueeze(0).repeat(count, 1)

    def merge(self, row: int, subset: Tensor, best: Candidates) -> Tensor:
        """Take a stage's points on the examples `subset` at eps row `row` where they are
        misclassified or of higher cross-entropy; the count of examples newly fooled."""
        labels = self.y.index_select(0, subset)
        hit = best.logits.argmax(dim=1) != labels
        new = F.cross_entropy(best.logits, labels, reduction="none")
        old = F.cross_entropy(self.logits[row, subset], labels, reduction="none")
        keep = (hit | (new > old)).nonzero().squeeze(1)
        take = subset.index_select(0, keep)
        self.adversarial[row, take] = best.x.index_select(0, keep)
        self.logits[row, take] = best.logits.index_select(0, keep)
        self.fooled[row, subset[hit]] = True
        return hit.sum()

    def loss(self) -> Tensor:
        count = self.logits.shape[0]
        loss = F.cross_entropy(self.logits.flatten(0, 1), self.y.repeat(count), reduction="none")
        return loss.view(count, -1)


class _Stages:
    """Runs a stage at one eps on the examples `worst` holds robust there and merges the result."""

    def __init__(
        self,
        model: nn.Module,
        worst: _Worst,
        norm: NormName,
        bounds: Bounds,
        generator: RandomSource,
        max_batch: int | None,
        eot: int | None = None,
    ) -> None:
        self.model, self.worst, self.norm, self.bounds = model, worst, norm, bounds
        self.generator, self.max_batch, self.eot = generator, max_batch, eot

    def __call__(self, stage: Stage, outcome: StageOutcome, row: int, eps: float) -> None:
        worst, x = self.worst, self.worst.x
        subset = (~worst.fooled[row]).nonzero().squeeze(1)
        if subset.numel() == 0:
            return
        stream = stage_generator(self.generator, stage.name, subset)
        targeted = stage.options.get("targeted")
        if targeted is None:
            self._run(stage, outcome, row, eps, subset, None, stream, None, diagnose=True)
            return
        # APGD-T: the targets one after another, each on the examples still robust, all from
        # the random start that one run over every target would draw.
        shape = (subset.numel(), *x.shape[1:])
        noise = unit_noise(
            "uniform", self.norm, shape, generator=stream, device=x.device, dtype=x.dtype
        )
        order = self._targets(stage, outcome, subset, targeted)
        for rank in range(targeted):
            if rank:
                left = ~worst.fooled[row].index_select(0, subset)
                subset, noise, order = subset[left], noise[left], order[:, left]
                if subset.numel() == 0:
                    return
            targets = order[rank : rank + 1]
            self._run(stage, outcome, row, eps, subset, targets, stream, noise, diagnose=not rank)

    def _targets(self, stage: Stage, outcome: StageOutcome, subset: Tensor, count: int) -> Tensor:
        """(count, n) target classes of the examples `subset`, in the order they are attacked:
        by clean logit, or by MALT's linearised distance (its passes count for the stage)."""
        worst = self.worst
        labels = worst.y.index_select(0, subset)
        if stage.options.get("ranking") != "malt":
            return top_targets(worst.clean_logits.index_select(0, subset), labels, count)
        ev = Evaluator(self.model, self.eot or 1)
        order = malt_targets(ev, worst.x.index_select(0, subset), labels, count, self.norm)
        outcome.forward_passes += ev.forward_passes
        outcome.backward_passes += ev.backward_passes
        return order

    def _run(
        self,
        stage: Stage,
        outcome: StageOutcome,
        row: int,
        eps: float,
        subset: Tensor,
        targets: Tensor | None,
        stream: RandomSource,
        noise: Tensor | None,
        *,
        diagnose: bool,
    ) -> None:
        worst = self.worst
        labels = worst.y.index_select(0, subset)
        clean = worst.clean_logits.index_select(0, subset)
        ev = Evaluator(self.model, self.eot or 1)
        if not diagnose:  # one diagnostic per stage: the first target's
            ev.zero_gradients = torch.zeros((), dtype=torch.long, device=subset.device)
        best = run_stage(
            ev,
            stage.options,
            worst.x.index_select(0, subset),
            labels,
            clean,
            targets,
            eps=eps,
            norm=self.norm,
            bounds=self.bounds,
            generator=stream,
            max_batch=self.max_batch,
            start_noise=noise,
            kept_by_loss=self.eot is not None,
        )
        outcome.broken[row] += worst.merge(row, subset, best)
        outcome.add(ev)
