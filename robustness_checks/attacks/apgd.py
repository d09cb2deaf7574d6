"""Auto-PGD (Croce and Hein, ICML 2020) over all rows at once, with the CE and DLR losses."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, Objective
from robustness_checks.attacks.layout import Rows
from robustness_checks.attacks.regions import (
    NormName,
    RandomSource,
    Region,
    unit_direction,
)
from robustness_checks.execution.diagnostics import zero_gradient_rows

RHO = 0.75  # a step halves when fewer than this fraction of the steps since the last check rose
ALPHA = 0.75  # momentum: weight of the new gradient step against the previous move
DLR_CLASSES = {False: 3, True: 4}  # classes the (targeted) DLR loss needs


class DLRObjective:
    """Difference-of-logits-ratio loss, invariant to shifting and scaling the logits.

    Untargeted, labels (rows,): -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12); success when
    the prediction differs from y. Targeted, labels (rows, 2) holding (y, target):
    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12); success when the prediction is the target.
    pi sorts the logits in decreasing order.
    """

    def __init__(self, targeted: bool) -> None:
        self.targeted = targeted

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.targeted:
            top = logits.topk(4, dim=1).values
            pair = logits.gather(1, labels)
            scale = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12
            return (pair[:, 1] - pair[:, 0]) / scale
        top, order = logits.topk(3, dim=1)
        true = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
        other = torch.where(order[:, 0] == labels, top[:, 1], top[:, 0])
        return (other - true) / (top[:, 0] - top[:, 2] + 1e-12)

    def success(self, logits: Tensor, labels: Tensor) -> Tensor:
        predictions = logits.argmax(dim=1)
        return predictions == labels[:, 1] if self.targeted else predictions != labels


def make_objective(loss: str, targeted: bool, classes: int) -> Objective | DLRObjective:
    """The objective for `loss` ('ce' or 'dlr'); the DLR loss needs 3 classes (4 targeted)."""
    if loss == "ce":
        return Objective(targeted)
    if classes < DLR_CLASSES[targeted]:
        kind = "targeted DLR" if targeted else "DLR"
        raise ValueError(
            f"the {kind} loss needs at least {DLR_CLASSES[targeted]} classes, "
            f"the model has {classes}: use loss='ce'"
        )
    return DLRObjective(targeted)


def row_labels(loss: str, y: Tensor, targets: Tensor | None, count: int) -> Tensor:
    """Labels of every row, target-major over eps-major: y (untargeted), the target (targeted
    CE) or (y, target) pairs (targeted DLR). `targets` is (copies, n) or None."""
    if targets is None:
        return y.repeat(count)
    copies, n = targets.shape
    per_row = targets.unsqueeze(1).expand(copies, count, n).reshape(-1)
    if loss == "ce":
        return per_row
    return torch.stack([y.repeat(copies * count), per_row], dim=1)


def top_targets(clean_logits: Tensor, y: Tensor, count: int) -> Tensor:
    """The `count` classes of highest clean logit other than the true label: (count, n)."""
    classes = clean_logits.shape[1]
    if isinstance(count, bool) or not 1 <= count <= classes - 1:
        raise ValueError(
            f"targeted=N for apgd attacks the N most likely other classes: N must be an int "
            f"in [1, {classes - 1}], got {count!r}"
        )
    others = clean_logits.scatter(1, y.unsqueeze(1), float("-inf"))
    return others.topk(count, dim=1).indices.T.contiguous()


def reduce_targets(best: Candidates, targets: Tensor) -> tuple[Candidates, Tensor]:
    """Per (eps, example), the best point over the target copies of its row: a successful one if
    any, else the highest loss. Returns the reduced candidates and the target of each, (rows,)."""
    copies, n = targets.shape
    group = best.loss.shape[0] // copies
    loss = best.loss.view(copies, group)
    finite = loss.nan_to_num(nan=float("-inf")).clamp(max=torch.finfo(loss.dtype).max)
    pick = torch.where(best.success.view(copies, group), float("inf"), finite).argmax(dim=0)
    columns = torch.arange(group, device=loss.device)
    return best.select(pick * group + columns), targets[pick, columns % n]


def checkpoints(steps: int) -> list[int]:
    """Iterations w_j = ceil(p_j * steps) < steps, for p_0 = 0, p_1 = 0.22 and
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), in exact integer percent."""
    out: list[int] = []
    before, p = 0, 22
    while p <= 100:
        w = -(-p * steps // 100)
        if 0 < w < steps and w not in out:
            out.append(w)
        before, p = p, p + max(p - before - 3, 6)
    return out


def apgd(
    ev: Evaluator,
    objective: Objective | DLRObjective,
    rows: Rows,
    best: Candidates,
    *,
    steps: int,
    restarts: int,
    random_start: bool,
    early_stop: bool,
    generator: RandomSource,
    group: int | None = None,
    retire_dead: bool = False,
    start_noise: Tensor | None = None,
) -> None:
    """Run `restarts` APGD runs of `steps` iterations; `best` keeps the worst case per row.

    Rows r and r' attack the same (eps, example) when r % group == r' % group (default: every row
    its own); with early stop a row retires once it or any row of its group succeeds.
    retire_dead: a row whose input gradient at its start point is zero or not finite stops after
    that first evaluation. A zero gradient gives a zero step and no momentum, so such a row would
    spend all its steps on its start point; a non-finite one would only step to NaN. The result
    is the same (for zero gradients) at one forward and one backward pass per such row.
    start_noise: the first run's random start, one unit-ball point per example of rows.x
    (None: drawn from `generator`), so a caller can give several runs the same start.
    """
    group = group or rows.count
    solved = best.success.view(-1, group).sum(dim=0) if early_stop else None
    marks = checkpoints(steps)
    for restart in range(restarts if random_start else 1):
        noise = None
        if random_start and restart == 0 and start_noise is not None:
            noise = start_noise
        elif random_start:
            noise = rows.random_start(generator)
        pending = None
        if solved is not None:
            pending = (solved.repeat(rows.count // group) == 0).nonzero().squeeze(1)
        for index in rows.chunks(pending):
            if solved is not None:
                # Skip the rows whose group an earlier chunk solved in this restart.
                open_rows = solved.index_select(0, torch.remainder(index, group)) == 0
                index = index.index_select(0, open_rows.nonzero().squeeze(1))
                if index.numel() == 0:
                    continue
            examples = rows.examples(index)
            region = rows.region(index, examples)
            if noise is None:
                start = region.x0.clone()
            else:
                start = region.start(noise.index_select(0, examples))
            run = _Run(
                ev, objective, region, rows.norm, best, solved, group, marks, steps, retire_dead
            )
            run(start, rows.labels.index_select(0, index), rows.step.index_select(0, index), index)


@dataclass
class _State:
    """Per-row tensors of one run, compacted together when rows retire."""

    index: Tensor
    labels: Tensor
    x: Tensor
    x_prev: Tensor
    grad: Tensor | None
    x_max: Tensor
    grad_max: Tensor | None
    loss_max: Tensor
    loss_prev: Tensor
    step: Tensor
    rises: Tensor
    loss_at_check: Tensor
    halved_at_check: Tensor

    def select(self, keep: Tensor) -> _State:
        values = (getattr(self, f.name) for f in fields(self))
        return _State(*(v if v is None else v.index_select(0, keep) for v in values))


class _Run:
    """One APGD run on a chunk of rows: steps + 1 forward and `steps` backward passes (fewer
    with early stop or `retire_dead`); the best point of each row is merged into `out`."""

    def __init__(
        self,
        ev: Evaluator,
        objective: Objective | DLRObjective,
        region: Region,
        norm: NormName,
        out: Candidates,
        solved: Tensor | None,
        group: int,
        marks: list[int],
        steps: int,
        retire_dead: bool = False,
    ) -> None:
        self.ev, self.objective, self.region, self.norm = ev, objective, region, norm
        self.out, self.solved, self.group, self.marks, self.steps = out, solved, group, marks, steps
        self.retire_dead = retire_dead

    def __call__(self, x: Tensor, labels: Tensor, step: Tensor, index: Tensor) -> None:
        local = self.out.select(index)
        s: _State | None = None
        last_mark = 0
        for i in range(self.steps + 1):
            logits, loss, grad = self._evaluate(x, labels, need_grad=i < self.steps)
            success = self.objective.success(logits, labels)
            local.update(x, logits, loss, success)
            if s is None:
                rises = torch.zeros_like(loss)
                halved = torch.ones_like(success)  # as if halved before the first check
                s = _State(
                    index, labels, x, x, grad, x, grad, loss, loss, step, rises, loss, halved
                )
            else:
                s.rises += loss > s.loss_prev
                s.loss_prev = loss
                s.x_prev, s.x = s.x, x
                improved = loss > s.loss_max
                s.x_max = torch.where(_rows(improved, x), x, s.x_max)
                s.loss_max = torch.where(improved, loss, s.loss_max)
                if grad is not None:
                    s.grad = grad
                    s.grad_max = torch.where(_rows(improved, x), grad, s.grad_max)
            keep = self._retire(s, local, success, first=i == 0)
            if keep is not None:
                if keep.numel() == 0:
                    return
                s, local = s.select(keep), local.select(keep)
                self.region = self.region.select(keep)
            if i == self.steps:
                break
            if i in self.marks:
                self._check(s, i - last_mark)
                last_mark = i
            x = self._move(s, first=i == 0)
            labels = s.labels
        self.out.put(s.index, local)

    def _evaluate(
        self, x: Tensor, labels: Tensor, *, need_grad: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        if not need_grad:  # the last point needs a forward pass but no gradient
            logits = self.ev(x)
            return logits, self.objective.loss(logits, labels), None
        leaf = x.detach().requires_grad_(True)
        logits = self.ev(leaf)
        loss = self.objective.loss(logits, labels)
        grad = self.ev.input_gradient(loss, leaf)
        return logits.detach(), loss.detach(), grad

    def _check(self, s: _State, length: int) -> None:
        """At a checkpoint, halve the step of the rows whose loss rose in fewer than RHO of the
        steps since the last one, or that were not halved there and did not improve since; they
        restart from their highest-loss point. The reference implementation (and torchattacks)
        counts the first checkpoint as preceded by a halving, so only the first test applies."""
        stalled = ~s.halved_at_check & (s.loss_max <= s.loss_at_check)
        halve = (s.rises < RHO * length) | stalled
        s.step = torch.where(halve, s.step * 0.5, s.step)
        s.x = torch.where(_rows(halve, s.x), s.x_max, s.x)
        s.grad = torch.where(_rows(halve, s.x), s.grad_max, s.grad)
        s.halved_at_check, s.loss_at_check = halve, s.loss_max
        s.rises = torch.zeros_like(s.rises)

    def _move(self, s: _State, *, first: bool) -> Tensor:
        """z = P(x + step * dir(grad)); x_next = P(x + ALPHA (z - x) + (1 - ALPHA)(x - x_prev)),
        without momentum on the first step."""
        direction = unit_direction(s.grad, self.norm)
        z = self.region.project(torch.addcmul(s.x, direction, _rows(s.step, s.x)))
        if first:
            return z
        moved = z.sub_(s.x).mul_(ALPHA).add_(s.x - s.x_prev, alpha=1.0 - ALPHA).add_(s.x)
        return self.region.project(moved)

    def _retire(
        self, s: _State, local: Candidates, success: Tensor, *, first: bool
    ) -> Tensor | None:
        """Write to `out` the rows that stop now: with early stop those of groups with a success
        (marked solved), with `retire_dead` after the first evaluation those whose gradient is
        zero or not finite. None if none stop, else the positions of the rows to keep
        attacking. This is the one host sync per evaluation that these need."""
        leaving = None
        if self.solved is not None:
            groups = torch.remainder(s.index, self.group)
            self.solved.index_add_(0, groups, success.to(self.solved.dtype))
            leaving = self.solved.index_select(0, groups) > 0
        if first and self.retire_dead and s.grad is not None:
            dead = zero_gradient_rows(s.grad)
            leaving = dead if leaving is None else leaving | dead
        if leaving is None or not bool(leaving.any()):
            return None
        rows = leaving.nonzero().squeeze(1)
        self.out.put(s.index.index_select(0, rows), local.select(rows))
        return (~leaving).nonzero().squeeze(1)


def _rows(values: Tensor, like: Tensor) -> Tensor:
    """A (rows,) tensor viewed to broadcast over `like`'s (rows, ...) inputs."""
    return values.view(-1, *([1] * (like.ndim - 1)))
