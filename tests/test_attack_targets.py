"""MALT's target ranking and Square's retirement of rows that make no progress."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustness_checks.attacks import run_attack
from robustness_checks.attacks.auto import auto_stages
from robustness_checks.attacks.candidates import Candidates
from robustness_checks.attacks.evaluation import Evaluator, Objective
from robustness_checks.attacks.layout import Rows
from robustness_checks.attacks.square import square
from robustness_checks.attacks.targets import malt_targets


def _linear(classes: int = 10, inputs: int = 20, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    model = nn.Linear(inputs, classes)
    with torch.no_grad():
        # Rows of very different sizes: logit gaps and boundary distances disagree.
        model.weight.mul_(torch.logspace(-1, 1, classes).unsqueeze(1))
    return model.double()


@pytest.mark.parametrize(("norm", "dual"), [("inf", 1.0), ("2", 2.0)])
def test_malt_ranks_a_linear_models_targets_by_their_exact_distance(norm: str, dual: float) -> None:
    """For z = W x + b the distance to class t's boundary is (z_y - z_t) / ||w_y - w_t||_q."""
    model = _linear()
    x = torch.rand(64, 20, dtype=torch.float64)
    with torch.no_grad():
        z = model(x)
    y = z.argmax(dim=1)
    w = model.weight.detach()
    gaps = z.gather(1, y.unsqueeze(1)) - z
    sizes = (w[y].unsqueeze(1) - w.unsqueeze(0)).norm(p=dual, dim=2)
    distance = (gaps / sizes).scatter(1, y.unsqueeze(1), torch.inf)
    exact = distance.argsort(dim=1)[:, :9].T
    ev = Evaluator(model)
    found = malt_targets(ev, x, y, 9, norm)  # type: ignore[arg-type]
    assert torch.equal(found, exact)
    assert (ev.forward_passes, ev.backward_passes) == (64, 64 * 10)
    # Ranking by clean logit alone puts other classes first on most of these inputs.
    by_logit = z.scatter(1, y.unsqueeze(1), -torch.inf).topk(1, dim=1).indices.T
    assert (by_logit[0] != exact[0]).float().mean() > 0.3


def test_standard_attacks_malts_nearest_four_and_full_keeps_autoattacks_budget() -> None:
    standard, full = auto_stages("standard", 10), auto_stages("full", 10)
    assert standard[1].options["targeted"] == 4 and standard[1].options["ranking"] == "malt"
    assert full[1].options["targeted"] == 9 and full[1].options["ranking"] == "logits"
    assert standard[2].options["retire"] and not full[2].options["retire"]
    assert standard[2].options["stall"] and full[2].options["stall"] is None
    assert standard[2].options["queries"] == full[2].options["queries"] == 5000


def _square(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk: int,
    retire: tuple[tuple[int, float], ...] = (),
    stall: int | None = None,
) -> tuple[Candidates, int]:
    """Square (400 queries, seed 3) at L-inf eps 0.1: the best points and the passes made."""
    ev = Evaluator(model)
    with torch.no_grad():
        logits = ev(x)
    objective = Objective(False)
    eps = torch.full((len(y),), 0.1, dtype=x.dtype)
    rows = Rows(x, eps, y, 2 * eps, "inf", (0.0, 1.0), chunk)
    best = Candidates(x.clone(), logits, objective.loss(logits, y), objective.success(logits, y))
    generator = torch.Generator().manual_seed(3)
    square(
        ev,
        objective,
        rows,
        best,
        queries=400,
        p_init=None,
        generator=generator,
        retire=retire,
        stall=stall,
    )
    return best, ev.forward_passes


def test_square_retirement_stops_only_rows_behind_and_keeps_the_others_paths() -> None:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    model = digits_cnn(pretrained=True)
    x, y = test_set(60)
    full, full_passes = _square(model, x, y, chunk=60)
    retired, passes = _square(model, x, y, chunk=60, retire=((100, 0.5),))
    again, _ = _square(model, x, y, chunk=7, retire=((100, 0.5),))  # other batches, same rows
    assert torch.equal(retired.x, again.x) and torch.equal(retired.success, again.success)
    assert passes < full_passes
    # A row that ran on ends where the full run ends; one that differs was stopped unbroken.
    differs = ~(retired.x == full.x).flatten(1).all(dim=1)
    assert bool(differs.any())
    assert not bool((differs & retired.success).any())
    assert torch.equal(retired.success | differs, full.success | differs)


def test_standard_stays_near_full_at_a_fraction_of_its_passes() -> None:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn_adversarial

    model = digits_cnn_adversarial()
    x, y = test_set(60)
    results = {
        version: run_attack(
            model,
            x,
            y,
            method="auto",
            version=version,
            eps=0.2,
            generator=torch.Generator().manual_seed(0),
        )
        for version in ("standard", "full")
    }
    robust = {v: int((~r.success[0]).sum()) for v, r in results.items()}
    assert robust["full"] <= robust["standard"] <= robust["full"] + 1
    assert results["standard"].forward_passes < results["full"].forward_passes / 2.5


class _Flat(nn.Module):
    """Class 0 ahead by 1 whatever the input: no proposal ever lowers the margin."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10, dtype=x.dtype)
        logits[:, 0] = 1.0
        return logits


def test_square_stall_stops_rows_whose_proposals_are_all_refused() -> None:
    x, y = torch.rand(5, 1, 8, 8), torch.zeros(5, dtype=torch.long)
    _, passes = _square(_Flat(), x, y, chunk=5)
    _, stalled = _square(_Flat(), x, y, chunk=5, stall=50)
    # The clean pass and the start point, then one query per row per step: 400 steps, or 50.
    assert passes == 5 + 5 * 400
    assert stalled == 5 + 5 + 5 * 50
