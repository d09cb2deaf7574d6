"""Tests of the attack engine: exact answers on affine models, invariants, and peers on the demo."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from robustness_checks.attacks import AttackResult, eval_mode, parse_norm, run_attack

DTYPE = torch.float64
DIM = 16
EPS = [0.0, 0.05, 0.1, 0.2, 0.4]
METHODS = ["fgsm", "pgd", "uniform", "gaussian"]


# Small models run fastest on one thread, and two threads per pytest-xdist worker would
# oversubscribe the cores (OpenMP barriers then spin while their peer is descheduled).
pytestmark = pytest.mark.usefixtures("one_thread")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def affine_model(classes: int = 2, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(DIM, classes, dtype=DTYPE).eval()


def affine_data(model: nn.Linear, norm: str, n: int = 400) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs, labels and, per eps in EPS, whether each example is robust (analytically).

    The L-inf (L2) optimal attack lowers the margin (w_y - w_o).x + b_y - b_o by
    eps * ||w_y - w_o||_1 (_2). Examples within 5% of that threshold at any eps are dropped.
    """
    g = generator(1)
    x = torch.randn(n, DIM, generator=g, dtype=DTYPE)
    y = torch.randint(0, 2, (n,), generator=g)
    w, b = model.weight.detach(), model.bias.detach()
    sign = (1 - 2 * y).to(DTYPE)  # +1 for class 0, -1 for class 1
    margin = sign * ((w[0] - w[1]) @ x.T + b[0] - b[1])
    dual = 1 if norm == "inf" else 2
    reduction = torch.tensor(EPS, dtype=DTYPE)[:, None] * torch.linalg.vector_norm(
        w[0] - w[1], ord=dual
    )
    keep = ((margin - reduction).abs() > 0.05 * reduction.clamp_min(0.05)).all(dim=0)
    robust = margin[keep] > reduction
    return x[keep], y[keep], robust


class MLP(nn.Module):
    """A small random nonlinear classifier with dropout and batch norm (to test eval mode)."""

    def __init__(self, inputs: int = 20, classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(inputs, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, classes),
        )
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append(self.training)
        return self.net(x.flatten(1))


def mlp_case(n: int = 200, low: float = 0.0, high: float = 1.0) -> tuple[MLP, Tensor, Tensor]:
    model = MLP().to(DTYPE).eval()
    g = generator(2)
    x = low + (high - low) * torch.rand(n, 20, generator=g, dtype=DTYPE)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    flip = torch.rand(n, generator=g) < 0.1
    y = torch.where(flip, (y + 1) % 5, y)
    return model, x, y


# --- exact answers on affine models -------------------------------------------------------------


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("method", ["pgd", "fgsm"])
def test_affine_robust_accuracy_is_exact(norm: str, method: str) -> None:
    model = affine_model()
    x, y, robust = affine_data(model, norm)
    result = run_attack(
        model, x, y, method=method, eps=EPS, norm=norm, steps=20, bounds=None, generator=generator()
    )
    assert torch.equal(~result.success, robust)
    assert torch.equal(result.accuracy(y), robust.to(torch.float32).mean(dim=1))
    assert 0.2 < result.accuracy(y)[2] < 0.8  # the data set makes the test meaningful


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_affine_exact_with_early_stop_restarts_and_small_chunks(norm: str) -> None:
    model = affine_model()
    x, y, robust = affine_data(model, norm)
    result = run_attack(
        model,
        x,
        y,
        method="pgd",
        eps=EPS,
        norm=norm,
        steps=20,
        restarts=2,
        early_stop=True,
        bounds=None,
        generator=generator(),
        max_batch=37,
    )
    assert torch.equal(~result.success, robust)
    accuracy = result.accuracy(y)
    assert torch.all(accuracy[1:] <= accuracy[:-1])


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("case", ["affine", "mlp"])
def test_eps_list_equals_separate_calls(case: str, norm: str) -> None:
    if case == "affine":
        model = affine_model()
        x, y, _ = affine_data(model, norm)
        bounds = None
    else:
        model, x, y = mlp_case()
        bounds = (0.0, 1.0)
    kwargs = {"method": "pgd", "norm": norm, "steps": 10, "bounds": bounds}
    together = run_attack(model, x, y, eps=EPS, generator=generator(5), **kwargs)
    for i, eps in enumerate(EPS):
        alone = run_attack(model, x, y, eps=eps, generator=generator(5), **kwargs)
        torch.testing.assert_close(alone.adversarial[0], together.adversarial[i])
        assert torch.equal(alone.success[0], together.success[i])


def test_targeted_reaches_the_target_when_eps_is_large() -> None:
    model = affine_model(classes=4, seed=3)
    x = torch.randn(100, DIM, generator=generator(4), dtype=DTYPE)
    y = model(x).argmax(dim=1).detach()
    for target in [2, "least_likely"]:
        result = run_attack(
            model,
            x,
            y,
            method="pgd",
            eps=[0.01, 5.0],
            steps=30,
            targeted=target,
            bounds=None,
            generator=generator(),
        )
        expected = result.clean_logits.argmin(dim=1) if target == "least_likely" else 2
        assert torch.equal(result.targets, torch.broadcast_to(torch.as_tensor(expected), y.shape))
        assert result.success[1].all()
        assert torch.equal(result.predictions[1], result.targets)
        assert result.success[0].float().mean() < 0.5
        # Success is "predicted as the target", which the clean point already is where y == 2.
        assert torch.equal(result.success[0] | (result.targets == y), result.success[0])


# --- invariants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-1.0, 0.5)])
def test_points_lie_in_the_ball_and_the_bounds(
    method: str, norm: str, bounds: tuple[float, float]
) -> None:
    model, x, y = mlp_case(low=bounds[0], high=bounds[1])
    eps = [0.05, 0.3, 3.0]
    result = run_attack(
        model, x, y, method=method, eps=eps, norm=norm, steps=5, restarts=2, bounds=bounds
    )
    assert result.adversarial.shape == (3, *x.shape)
    norms = result.perturbation_norms(x)
    assert torch.all(norms <= torch.tensor(eps, dtype=DTYPE)[:, None] + 1e-6)
    assert result.adversarial.min() >= bounds[0] - 1e-6
    assert result.adversarial.max() <= bounds[1] + 1e-6
    if method != "uniform" or norm == "inf":
        # At eps 3 the points reach the (non-[0, 1]) bounds, so nothing clips to [0, 1].
        assert result.adversarial[2].min() <= bounds[0] + 1e-6
    # Predictions, confidences and success are those of the returned points.
    with torch.no_grad():
        logits = model(result.adversarial.flatten(0, 1)).view(3, len(x), -1)
    assert torch.equal(logits.argmax(dim=-1), result.predictions)
    torch.testing.assert_close(logits.softmax(dim=-1).amax(dim=-1), result.confidences)
    assert torch.equal(result.success, result.predictions != y)


def test_unbounded_points_may_leave_the_unit_box() -> None:
    model, x, y = mlp_case()
    result = run_attack(model, x, y, method="fgsm", eps=2.0, bounds=None)
    assert result.adversarial.min() < -0.5
    assert result.adversarial.max() > 1.5


def test_pgd_never_weaker_than_fgsm() -> None:
    model, x, y = mlp_case()
    eps = [0.02, 0.05, 0.1]
    fgsm = run_attack(model, x, y, method="fgsm", eps=eps)
    # With step = rel_step_size * eps / steps = eps and no random start, PGD's first step is the
    # FGSM point, and PGD keeps the best point: everything FGSM fools, PGD fools.
    pgd_from_x = run_attack(
        model, x, y, method="pgd", eps=eps, steps=10, rel_step_size=10, random_start=False
    )
    assert not torch.any(fgsm.success & ~pgd_from_x.success)
    # With random starts there is no such guarantee per example, but PGD is stronger overall.
    pgd = run_attack(
        model, x, y, method="pgd", eps=eps, steps=20, restarts=3, generator=generator()
    )
    assert torch.all(pgd.accuracy(y) <= fgsm.accuracy(y))
    assert pgd.accuracy(y)[1] < fgsm.accuracy(y)[1]
    for method in ["uniform", "gaussian"]:
        noise = run_attack(model, x, y, method=method, eps=eps, restarts=3, generator=generator())
        assert torch.all(noise.accuracy(y) >= pgd.accuracy(y))
        assert torch.all(noise.accuracy(y) <= noise.clean_accuracy(y))


def test_fgsm_l2_point_is_the_normalised_gradient_step() -> None:
    model, x, y = mlp_case()
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(
        nn.functional.cross_entropy(model(leaf), y, reduction="sum"), leaf
    )
    result = run_attack(model, x, y, method="fgsm", eps=0.1, norm=2, bounds=None)
    expected = x + 0.1 * grad / grad.norm(dim=1, keepdim=True)
    # The clean point is kept instead where it is better (already misclassified, higher loss).
    moved = (result.adversarial[0] != x).any(dim=1)
    assert moved.float().mean() > 0.8
    torch.testing.assert_close(result.adversarial[0][moved], expected[moved])


def test_no_parameter_grad_and_eval_mode_restored() -> None:
    model, x, y = mlp_case()
    model.train()
    model.modes.clear()
    with torch.no_grad():  # the attack must work inside no_grad too
        run_attack(model, x, y, method="pgd", eps=0.1, steps=3, generator=generator())
        run_attack(model, x, y, method="fgsm", eps=0.1, norm=2)
    assert model.modes and not any(model.modes)
    assert all(module.training for module in model.modules())
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    with torch.inference_mode():
        run_attack(model, x, y, method="pgd", eps=0.1, steps=2, early_stop=True)
    assert not any(module.training for module in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_eval_mode_context_restores_mixed_flags() -> None:
    model = MLP()
    model.eval()
    model.net[3].train()
    with eval_mode(model):
        assert not any(module.training for module in model.modules())
    assert model.net[3].training and not model.net[0].training


def test_reproducible_with_the_same_seed() -> None:
    model, x, y = mlp_case()
    for method in ["pgd", "uniform", "gaussian"]:
        runs = [
            run_attack(model, x, y, method=method, eps=[0.05, 0.1], restarts=2, generator=g)
            for g in (generator(7), generator(7), generator(8))
        ]
        assert torch.equal(runs[0].adversarial, runs[1].adversarial)
        assert not torch.equal(runs[0].adversarial, runs[2].adversarial)


def test_forward_pass_counts() -> None:
    model, x, y = mlp_case(n=50)
    kwargs = {"eps": [0.05, 0.1], "generator": generator()}
    pgd = run_attack(model, x, y, method="pgd", steps=5, restarts=2, **kwargs)
    assert pgd.forward_passes == 50 + 2 * 2 * 50 * 6
    assert pgd.backward_passes == 2 * 2 * 50 * 5
    early = run_attack(model, x, y, method="pgd", steps=5, restarts=2, early_stop=True, **kwargs)
    assert early.forward_passes < pgd.forward_passes
    assert early.backward_passes < pgd.backward_passes
    # Same random stream and same paths for the rows not yet fooled: the same rows get fooled.
    assert torch.equal(early.success, pgd.success)
    fgsm = run_attack(model, x, y, method="fgsm", **kwargs)
    assert (fgsm.forward_passes, fgsm.backward_passes) == (50 + 2 * 50, 50)
    noise = run_attack(model, x, y, method="gaussian", restarts=3, **kwargs)
    assert (noise.forward_passes, noise.backward_passes) == (50 + 3 * 2 * 50, 0)


def test_best_point_beats_last_iterate() -> None:
    """A point fooled mid-run stays fooled even if later steps wander back (large steps)."""
    model, x, y = mlp_case()
    result = run_attack(
        model, x, y, method="pgd", eps=0.1, steps=7, step_size=0.2, generator=generator()
    )
    with torch.no_grad():
        assert torch.equal(model(result.adversarial[0]).argmax(dim=1) != y, result.success[0])
    assert torch.all(result.accuracy(y) <= result.clean_accuracy(y))


def test_result_helpers() -> None:
    model, x, y = mlp_case()
    result = run_attack(model, x, y, method="uniform", eps=[0.0, 0.1], generator=generator())
    assert isinstance(result, AttackResult)
    assert result.eps == [0.0, 0.1]
    assert torch.equal(result.adversarial[0], x)
    assert result.accuracy(y)[0] == result.clean_accuracy(y)
    torch.testing.assert_close(result.success_rate(), result.success.float().mean(dim=1))
    assert "uniform" in repr(result)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "cw", "eps": 0.1}, "method"),
        ({"method": "pgd", "eps": -0.1}, "eps"),
        ({"method": "pgd", "eps": []}, "eps"),
        ({"method": "pgd", "eps": 0.1, "norm": 1}, "norm"),
        ({"method": "pgd", "eps": 0.1, "steps": -1}, "steps"),
        ({"method": "pgd", "eps": 0.1, "restarts": 0}, "restarts"),
        ({"method": "pgd", "eps": 0.1, "bounds": (0.5, 0.9)}, "outside bounds"),
        ({"method": "pgd", "eps": 0.1, "targeted": 9}, "targeted"),
        ({"method": "pgd", "eps": 0.1, "targeted": "most_likely"}, "targeted"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    model, x, y = mlp_case(n=10)
    with pytest.raises(ValueError, match=message):
        run_attack(model, x, y, **kwargs)


def test_parse_norm() -> None:
    assert {parse_norm(v) for v in ["inf", "Linf", math.inf, float("inf")]} == {"inf"}
    assert {parse_norm(v) for v in [2, 2.0, "2", "l2", "L2"]} == {"2"}


# --- against torchattacks on the demo model ------------------------------------------------------


@pytest.mark.parametrize(("norm", "eps"), [("inf", 0.1), ("inf", 0.2), ("2", 1.0)])
def test_demo_pgd_at_least_as_strong_as_torchattacks(norm: str, eps: float) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    model = digits_cnn(pretrained=True)
    x, y = test_set()
    ours = run_attack(
        model, x, y, method="pgd", eps=eps, norm=norm, steps=20, generator=generator()
    ).accuracy(y)[0]
    peer_class = torchattacks.PGD if norm == "inf" else torchattacks.PGDL2
    torch.manual_seed(0)
    peer = peer_class(model, eps=eps, alpha=2.5 * eps / 20, steps=20, random_start=True)
    adversarial = peer(x, y)
    with torch.no_grad():
        theirs = (model(adversarial).argmax(dim=1) == y).float().mean()
    assert ours <= theirs + 0.01
    fgsm = run_attack(model, x, y, method="fgsm", eps=eps, norm=norm)
    assert ours <= fgsm.accuracy(y)[0]
    assert all(p.grad is None for p in model.parameters())
