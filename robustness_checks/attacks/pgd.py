"""Projected gradient descent (Madry et al.) over all rows at once, keeping the best points."""

from __future__ import annotations

from torch import Tensor

from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, Objective
from robustness_checks.attacks.layout import Rows
from robustness_checks.attacks.regions import RandomSource, Region


def pgd(
    ev: Evaluator,
    objective: Objective,
    rows: Rows,
    best: Candidates,
    *,
    steps: int,
    restarts: int,
    random_start: bool,
    early_stop: bool,
    generator: RandomSource,
) -> None:
    """Run `restarts` PGD runs of `steps` steps; `best` keeps the worst case per row over all."""
    for _ in range(restarts):
        noise = rows.random_start(generator) if random_start else None
        pending = (~best.success).nonzero().squeeze(1) if early_stop else None
        for index in rows.chunks(pending):
            examples = rows.examples(index)
            region = rows.region(index, examples)
            if noise is None:
                start = region.x0.clone()
            else:
                start = region.start(noise.index_select(0, examples))
            _run(
                ev,
                objective,
                region,
                start,
                rows.labels.index_select(0, index),
                rows.step.index_select(0, index),
                index,
                best,
                steps=steps,
                early_stop=early_stop,
            )


def _run(
    ev: Evaluator,
    objective: Objective,
    region: Region,
    x: Tensor,
    labels: Tensor,
    step: Tensor,
    index: Tensor,
    out: Candidates,
    *,
    steps: int,
    early_stop: bool,
) -> None:
    """One PGD run on the rows `index`, starting at `x`: steps + 1 forward and `steps` backward
    passes, fewer with early stop. The best point of each row is merged into `out`."""
    local = out.select(index)
    grad = None
    for t in range(steps + 1):
        if t < steps:
            leaf = x.detach().requires_grad_(True)
            logits = ev(leaf)
            loss = objective.loss(logits, labels)
            grad = ev.input_gradient(loss, leaf)
            logits, loss = logits.detach(), loss.detach()
        else:
            # The last step's point needs a forward pass but no gradient.
            logits = ev(x)
            loss = objective.loss(logits, labels)
        success = objective.success(logits, labels)
        if early_stop:
            keep = _retire_successes(out, index, x, logits, loss, success)
            if keep is not None:
                if keep.numel() == 0:
                    return
                x, labels, step, index = (v.index_select(0, keep) for v in (x, labels, step, index))
                logits, loss, success = (v.index_select(0, keep) for v in (logits, loss, success))
                if t < steps:
                    grad = grad.index_select(0, keep)
                region = region.select(keep)
                local = local.select(keep)
        local.update(x, logits, loss, success)
        if t < steps:
            x = region.step(x, grad, step)
    out.put(index, local)


def _retire_successes(
    out: Candidates, index: Tensor, x: Tensor, logits: Tensor, loss: Tensor, success: Tensor
) -> Tensor | None:
    """Write the successful rows' points to `out`; None if there are none, else the positions of
    the rows to keep attacking. This is the one host sync per step that early stop needs."""
    finished = success.nonzero().squeeze(1)
    if finished.numel() == 0:
        return None
    done = Candidates(*(v.index_select(0, finished) for v in (x, logits, loss, success)))
    out.put(index.index_select(0, finished), done)
    return (~success).nonzero().squeeze(1)
