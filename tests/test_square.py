"""Tests of the Square attack: shattered gradients, affine truth, torchattacks, costs, streams."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import robustness_checks.attacks.square as square_module
from robustness_checks.attacks import AttackResult, run_attack
from robustness_checks.attacks.square import _p_selection, _window_size
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.execution.random_streams import ExampleStream

pytestmark = pytest.mark.usefixtures("one_thread")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Quantised(nn.Module):
    """Rounds inputs to 4 levels before the CNN: zero input gradients almost everywhere."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(torch.round(x * 3) / 3)


class Counting(nn.Module):
    """Counts the inputs it is called on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.inputs = model, 0

    def forward(self, x: Tensor) -> Tensor:
        self.inputs += x.shape[0]
        return self.model(x)


class Affine(nn.Module):
    """A 2-class affine model of the flattened input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.linear = nn.Linear(dim, 2, dtype=torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, Tensor, Tensor]:
    x, y = test_set(200)
    return digits_cnn(pretrained=True), x, y


def robust_accuracy(result: AttackResult, y: Tensor, correct: Tensor) -> float:
    """Accuracy under attack among the clean-correct examples."""
    return ((result.predictions[0] == y) & correct).sum().item() / correct.sum().item()


@pytest.mark.parametrize(("norm", "eps"), [("inf", 0.2), (2, 1.0)])
def test_square_breaks_a_quantised_model_that_pgd_cannot(digits, norm, eps) -> None:
    model, x, y = digits
    model, x, y = Quantised(model), x[:100], y[:100]
    square = run_attack(
        model, x, y, method="square", eps=eps, norm=norm, queries=1000, generator=generator()
    )
    pgd = run_attack(model, x, y, method="pgd", eps=eps, norm=norm, steps=20, generator=generator())
    correct = square.clean_predictions == y
    assert correct.float().mean() > 0.9
    square_acc, pgd_acc = robust_accuracy(square, y, correct), robust_accuracy(pgd, y, correct)
    assert square_acc < 0.2 < 0.8 < pgd_acc, (square_acc, pgd_acc)
    assert square.backward_passes == 0 and square.zero_gradients is None
    # Most examples fall within a few queries: far below n * queries.
    assert square.forward_passes < 100 * 1000 / 10


@pytest.mark.parametrize(
    ("norm", "shape", "queries", "gap"),
    [
        ("inf", (12,), 600, 0.0),
        ("inf", (2, 6), 600, 0.0),
        ("inf", (1, 3, 4), 600, 0.0),
        (2, (12,), 1000, 0.08),
        (2, (2, 6), 1000, 0.08),
    ],
)
def test_square_never_beats_the_affine_truth_and_nearly_reaches_it(
    norm, shape, queries, gap
) -> None:
    """(d,) inputs are searched as 1 x d rows, (C, L) as C x 1 x L, (C, H, W) as images."""
    model = Affine(12).eval()
    x = torch.randn(400, *shape, generator=generator(1), dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    margin = logits.amax(1) - logits.amin(1)
    w = model.linear.weight.detach()
    reduction = torch.linalg.vector_norm(w[0] - w[1], ord=1 if norm == "inf" else 2)
    eps = (margin / reduction).median().item()  # half the examples are robust
    keep = (margin - eps * reduction).abs() > 0.01 * eps * reduction  # off the threshold
    x, y, truth = x[keep], y[keep], (margin > eps * reduction)[keep]
    result = run_attack(
        model,
        x,
        y,
        method="square",
        eps=eps,
        norm=norm,
        queries=queries,
        bounds=None,
        generator=generator(),
    )
    robust = result.predictions[0] == y
    assert bool(robust[truth].all())  # no attack breaks a provably robust example
    excess = (robust.float().mean() - truth.float().mean()).item()
    assert excess <= gap, excess
    assert bool((result.perturbation_norms(x) <= eps * (1 + 1e-9)).all())


def test_square_agrees_with_torchattacks(digits, monkeypatch) -> None:
    """Same robust accuracy as torchattacks.Square (seed 0 against seed 0; over five seeds
    the means differed by 0.1 to 1.3 points) once our squares are drawn from the reference
    code's positions, which leave out the last row and column; with every position (as in
    the paper) ours is stronger on 8 x 8 images, where those are 23% of the pixels."""
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = digits
    queries = 1000

    def peer(norm: str, eps: float) -> float:
        with torch.random.fork_rng():
            attack = torchattacks.Square(
                model,
                norm=norm,
                eps=eps,
                n_queries=queries,
                p_init=0.8 if norm == "Linf" else 0.1,
                loss="margin",
                seed=0,
            )
            adv = attack(x, y)
        with torch.no_grad():
            return (model(adv).argmax(1) == y).float().mean().item()

    def ours(norm: str, eps: float) -> float:
        result = run_attack(
            model,
            x,
            y,
            method="square",
            norm=norm,
            eps=eps,
            queries=queries,
            generator=generator(),
        )
        assert bool((result.perturbation_norms(x) <= eps * (1 + 1e-5)).all())
        return result.accuracy(y).item()

    for norm, eps in [("Linf", 0.08), ("L2", 0.5)]:
        reference = peer(norm, eps)
        full = ours(norm, eps)
        with monkeypatch.context() as patch:
            patch.setattr(square_module, "_room", lambda length, size: max(length - size, 1))
            quirk = ours(norm, eps)
        assert abs(quirk - reference) <= 0.02, (norm, quirk, reference)
        assert full <= reference - 0.02, (norm, full, reference)


def test_p_schedule_matches_torchattacks() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    for queries in (100, 1000, 5000):
        attack = torchattacks.Square(nn.Linear(1, 2), n_queries=queries, p_init=0.8)
        for i in range(queries):
            assert _p_selection(0.8, i, queries) == attack.p_selection(i)
    assert _window_size(0.8, 8, 8, minimum=1, odd=False) == (7, 7)
    assert _window_size(0.1, 8, 8, minimum=3, odd=True) == (3, 3)
    assert _window_size(0.8 / 512, 8, 8, minimum=1, odd=False) == (1, 1)
    assert _window_size(0.5, 1, 12, minimum=1, odd=False) == (1, 6)
    assert _window_size(1.0, 4, 9, minimum=1, odd=False) == (4, 4)


@pytest.mark.parametrize(("norm", "eps"), [("inf", 0.1), (2, 1.0)])
def test_points_stay_in_the_ball_and_the_bounds(digits, norm, eps) -> None:
    model, x, y = digits
    x, y = x[:60], y[:60]
    result = run_attack(
        model,
        x,
        y,
        method="square",
        eps=[eps / 2, eps],
        norm=norm,
        queries=200,
        generator=generator(),
    )
    limits = torch.tensor([eps / 2, eps])[:, None]
    assert bool((result.perturbation_norms(x) <= limits * (1 + 1e-5)).all())
    assert bool(((result.adversarial >= 0) & (result.adversarial <= 1)).all())
    assert bool((result.success == (result.predictions != y)).all())
    assert result.success[1].sum() >= result.success[0].sum() > 0


def test_fooled_rows_stop_querying_and_every_query_is_counted(digits) -> None:
    model, x, y = digits
    counting = Counting(Quantised(model))
    result = run_attack(counting, x[:100], y[:100], method="square", eps=0.3, queries=500)
    assert result.forward_passes == counting.inputs
    assert bool(result.success.all())
    assert result.forward_passes < 100 + 100 * 500 / 20

    # A model that is never fooled: clean-wrong rows cost nothing, the others all `queries`.
    class Stubborn(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            score = 1e-3 * x.flatten(1).sum(1, keepdim=True)
            return torch.cat([100 + score, -score], dim=1)

    labels = torch.tensor([0] * 30 + [1] * 10)
    stubborn = Counting(Stubborn())
    result = run_attack(stubborn, x[:40], labels, method="square", eps=0.1, queries=77)
    assert result.forward_passes == stubborn.inputs == 40 + 30 * 77
    assert result.success.sum() == 10


@pytest.mark.parametrize("norm", ["inf", 2])
def test_results_do_not_depend_on_batch_eps_list_or_shard(digits, norm) -> None:
    model, x, y = digits
    x, y = x[:40], y[:40]
    eps = [0.05, 0.1] if norm == "inf" else [0.5, 1.0]

    def attack(lo: int, hi: int, eps, max_batch: int | None = None):
        stream = ExampleStream(11, torch.arange(lo, hi))
        return run_attack(
            model,
            x[lo:hi],
            y[lo:hi],
            method="square",
            eps=eps,
            norm=norm,
            queries=150,
            generator=stream,
            max_batch=max_batch,
        )

    whole = attack(0, 40, eps)
    small = attack(0, 40, eps, max_batch=7)
    assert torch.equal(whole.adversarial, small.adversarial)
    assert whole.forward_passes == small.forward_passes
    alone = attack(0, 40, eps[1:])
    assert torch.equal(whole.adversarial[1:], alone.adversarial)
    shard = attack(25, 40, eps)
    assert torch.equal(whole.adversarial[:, 25:], shard.adversarial)
    assert 0 < whole.success.sum() < whole.success.numel()
    # A torch.Generator gives the same points whatever the batch, too.
    big = run_attack(
        model, x, y, method="square", eps=eps, norm=norm, queries=50, generator=generator(3)
    )
    tiny = run_attack(
        model,
        x,
        y,
        method="square",
        eps=eps,
        norm=norm,
        queries=50,
        generator=generator(3),
        max_batch=5,
    )
    assert torch.equal(big.adversarial, tiny.adversarial)


def test_targeted_square_reaches_the_target_as_often_as_pgd(digits) -> None:
    model, x, y = digits
    x, y = x[:50], y[:50]
    kwargs = {"eps": 0.2, "targeted": 3, "generator": generator()}
    square = run_attack(model, x, y, method="square", queries=300, **kwargs)
    pgd = run_attack(model, x, y, method="pgd", steps=20, **kwargs)
    assert square.success.float().mean() >= max(0.6, pgd.success.float().mean() - 0.05)
    assert bool((square.success == (square.predictions == 3)).all())


def test_square_rejects_bad_parameters(digits) -> None:
    model, x, y = digits
    x, y = x[:4], y[:4]
    with pytest.raises(ValueError, match="queries"):
        run_attack(model, x, y, method="square", eps=0.1, queries=0)
    with pytest.raises(ValueError, match="p_init"):
        run_attack(model, x, y, method="square", eps=0.1, p_init=1.5)
    with pytest.raises(ValueError, match="dlr"):
        run_attack(model, x, y, method="square", eps=0.1, loss="dlr")
