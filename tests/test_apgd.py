"""Tests of APGD: exact answers, the DLR loss's scale invariance, and torchattacks' APGD/APGD-T."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from test_attacks import EPS, affine_data, affine_model, generator, mlp_case
from torch import Tensor, nn

import robustness_checks.attacks.apgd as apgd_module
from robustness_checks.attacks import run_attack
from robustness_checks.attacks.apgd import DLRObjective, checkpoints
from robustness_checks.execution.random_streams import ExampleStream

pytestmark = pytest.mark.usefixtures("one_thread")


@cache
def demo_model() -> nn.Module:
    from robustness_checks.demo.model import digits_cnn

    return digits_cnn(pretrained=True)


def demo_data(limit: int | None = 200) -> tuple[Tensor, Tensor]:
    from robustness_checks.demo.digits import test_set

    return test_set(limit)


class Scaled(nn.Module):
    """The same classifier with its logits multiplied by `factor`: a saturated softmax."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) * self.factor


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


# --- pieces ---------------------------------------------------------------------------------------


def test_checkpoints_follow_the_paper() -> None:
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(20) == [5, 9, 12, 14, 16, 18, 19]
    assert checkpoints(1) == []


def test_dlr_loss_values_and_invariance() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.5, -1.0], [3.0, 1.0, 0.5, -1.0]])
    untargeted = DLRObjective(targeted=False)
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(untargeted.loss(logits, labels), torch.tensor([-0.8, 0.8]))
    targeted = DLRObjective(targeted=True)
    pairs = torch.tensor([[0, 2], [1, 0]])
    expected = torch.tensor([-2.5 / 3.25, 2.0 / 3.25])
    torch.testing.assert_close(targeted.loss(logits, pairs), expected)
    for objective, lab in [(untargeted, labels), (targeted, pairs)]:
        moved = objective.loss(1000.0 * logits + 7.0, lab)
        torch.testing.assert_close(moved, objective.loss(logits, lab))
    assert torch.equal(untargeted.success(logits, labels), torch.tensor([False, True]))
    assert torch.equal(targeted.success(logits, pairs), torch.tensor([False, True]))


# --- exact answers on affine models ---------------------------------------------------------------


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("early_stop", [False, True])
def test_affine_robust_accuracy_is_exact(norm: str, early_stop: bool) -> None:
    model = affine_model()
    x, y, robust = affine_data(model, norm)
    result = run_attack(
        model,
        x,
        y,
        method="apgd",
        eps=EPS,
        norm=norm,
        steps=10,
        early_stop=early_stop,
        bounds=None,
        generator=generator(),
        max_batch=150,
    )
    assert torch.equal(~result.success, robust)
    assert 0.2 < result.accuracy(y)[2] < 0.8


# --- the demo model -------------------------------------------------------------------------------


def test_dlr_is_invariant_to_scaling_the_logits() -> None:
    model = demo_model()
    scaled = Scaled(model, 1000.0).eval()
    x, y = demo_data()
    kwargs = {"eps": 0.2, "steps": 20}
    dlr = {
        name: run_attack(m, x, y, method="apgd", loss="dlr", generator=generator(), **kwargs)
        for name, m in [("plain", model), ("scaled", scaled)]
    }
    plain, big = (dlr[k].accuracy(y)[0].item() for k in ("plain", "scaled"))
    assert abs(plain - big) <= 0.01
    assert plain < 0.1
    # Cross-entropy saturates: its gradient vanishes on the scaled model.
    pgd = run_attack(scaled, x, y, method="pgd", generator=generator(), **kwargs).accuracy(y)[0]
    assert pgd > plain + 0.5
    # PGD with the DLR loss is rescued too.
    pgd_dlr = run_attack(scaled, x, y, method="pgd", loss="dlr", generator=generator(), **kwargs)
    assert pgd_dlr.accuracy(y)[0] < 0.15


def test_apgd_at_least_as_strong_as_pgd() -> None:
    model = demo_model()
    x, y = demo_data()
    kwargs = {"eps": [0.1, 0.2], "steps": 20, "generator": generator()}
    ours = run_attack(model, x, y, method="apgd", **kwargs).accuracy(y)
    pgd = run_attack(model, x, y, method="pgd", **kwargs).accuracy(y)
    assert torch.all(ours <= pgd + 0.01)
    assert ours[0] < run_attack(model, x, y, method="fgsm", eps=0.1).accuracy(y)[0]


def _reference_checkpoints(steps: int) -> list[int]:
    """The integer schedule of the reference code (auto-attack, torchattacks)."""
    k, decrease, least = (max(int(f * steps), 1) for f in (0.22, 0.03, 0.06))
    out, at = [], k
    while at < steps:
        out.append(at)
        k = max(k - decrease, least)
        at += k
    return out


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_same_start_and_schedule_as_torchattacks_gives_the_same_points(
    loss: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With torchattacks' random start, its integer checkpoints and its `<=` in the first test,
    APGD fools exactly the examples torchattacks' APGD fools."""
    torchattacks = pytest.importorskip("torchattacks")
    model = demo_model()
    x, y = demo_data()
    correct = model(x).argmax(dim=1) == y
    x, y = x[correct], y[correct]  # torchattacks draws its start for these only

    def start(kind: str, norm: str, shape: tuple[int, ...], **_: object) -> Tensor:
        torch.manual_seed(3)
        t = 2 * torch.rand(shape) - 1
        return t / t.flatten(1).abs().amax(dim=1).view(-1, 1, 1, 1)

    # The random start is drawn by Rows.random_start (shared with PGD).
    monkeypatch.setattr("robustness_checks.attacks.layout.unit_noise", start)
    monkeypatch.setattr(apgd_module, "checkpoints", _reference_checkpoints)
    monkeypatch.setattr(apgd_module, "RHO", 0.75 + 1e-6)
    ours = run_attack(model, x, y, method="apgd", loss=loss, eps=0.1, steps=20)
    peer = torchattacks.APGD(model, norm="Linf", eps=0.1, steps=20, loss=loss, seed=3)
    theirs = model(peer(x, y)).argmax(dim=1) != y
    assert 0.2 < theirs.float().mean() < 0.8
    assert (ours.success[0] != theirs).sum() <= 1, (ours.success[0] != theirs).sum()


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_agrees_with_torchattacks_apgd(loss: str) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model = demo_model()
    x, y = demo_data(None)
    ours = run_attack(
        model,
        x,
        y,
        method="apgd",
        loss=loss,
        eps=0.1,
        steps=10,
        restarts=3,
        early_stop=True,
        generator=generator(),
    ).accuracy(y)[0]
    peer = torchattacks.APGD(model, norm="Linf", eps=0.1, steps=10, loss=loss, n_restarts=3)
    theirs = accuracy(model, peer(x, y), y)
    assert abs(ours - theirs) <= 0.01, (ours, theirs)
    assert all(p.grad is None for p in model.parameters())


def test_agrees_with_torchattacks_apgdt() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model = demo_model()
    x, y = demo_data()
    eps = [0.1, 0.15]
    result = run_attack(
        model,
        x,
        y,
        method="apgd",
        loss="dlr",
        targeted=9,
        eps=eps,
        steps=10,
        early_stop=True,
        generator=generator(),
    )
    for i, e in enumerate(eps):
        peer = torchattacks.APGDT(model, norm="Linf", eps=e, steps=10, n_restarts=1, n_classes=10)
        theirs = accuracy(model, peer(x, y), y)
        assert abs(result.accuracy(y)[i] - theirs) <= 0.01, (e, result.accuracy(y)[i], theirs)
    # Per eps and example, the kept point and the target it was attacked toward.
    assert result.adversarial.shape == (2, *x.shape)
    assert result.targets.shape == (2, len(x))
    assert torch.all(result.targets != y)
    fooled = result.success
    assert torch.equal(result.predictions[fooled], result.targets[fooled])
    untargeted = run_attack(model, x, y, method="apgd", loss="dlr", eps=eps, steps=10)
    assert torch.all(result.accuracy(y) <= untargeted.accuracy(y) + 0.01)


# --- invariants -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"loss": "dlr", "targeted": 3}, {"norm": 2, "loss": "dlr"}],
    ids=["ce-linf", "dlr-targeted", "dlr-l2"],
)
def test_results_do_not_depend_on_the_batch(kwargs: dict) -> None:
    model = demo_model()
    x, y = demo_data(60)
    eps = [0.5, 1.0] if kwargs.get("norm") == 2 else [0.1, 0.2]
    common = {"method": "apgd", "eps": eps, "steps": 10, "restarts": 2, **kwargs}
    whole, small = (
        run_attack(model, x, y, generator=ExampleStream(5, torch.arange(60)), max_batch=b, **common)
        for b in (None, 7)
    )
    part = run_attack(
        model, x[20:], y[20:], generator=ExampleStream(5, torch.arange(20, 60)), **common
    )
    for other, rows in [(small, slice(None)), (part, slice(20, None))]:
        assert torch.equal(other.success, whole.success[:, rows])
        torch.testing.assert_close(other.adversarial, whole.adversarial[:, rows])


@pytest.mark.parametrize("targeted", [None, 4])
def test_early_stop_same_accuracy_fewer_passes(targeted: int | None) -> None:
    model, x, y = mlp_case(n=50)
    kwargs = {"method": "apgd", "eps": [0.05, 0.1], "steps": 5, "restarts": 2}
    kwargs |= {"targeted": targeted, "loss": "dlr" if targeted else "ce"}
    full = run_attack(model, x, y, generator=generator(), **kwargs)
    copies = targeted or 1
    assert full.forward_passes == 50 + 2 * copies * 2 * 50 * 6
    assert full.backward_passes == 2 * copies * 2 * 50 * 5
    early = run_attack(model, x, y, generator=generator(), early_stop=True, **kwargs)
    assert torch.equal(early.success, full.success)
    assert early.forward_passes < full.forward_passes
    assert early.backward_passes < full.backward_passes


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_points_lie_in_the_ball_and_the_bounds(norm: str, loss: str) -> None:
    bounds = (-1.0, 0.5)
    model, x, y = mlp_case(low=bounds[0], high=bounds[1])
    eps = [0.05, 0.3, 3.0]
    result = run_attack(
        model, x, y, method="apgd", eps=eps, norm=norm, loss=loss, steps=5, bounds=bounds
    )
    assert result.adversarial.shape == (3, *x.shape)
    norms = result.perturbation_norms(x)
    assert torch.all(norms <= torch.tensor(eps, dtype=x.dtype)[:, None] + 1e-6)
    assert result.adversarial.min() >= bounds[0] - 1e-6
    assert result.adversarial.max() <= bounds[1] + 1e-6
    with torch.no_grad():
        logits = model(result.adversarial.flatten(0, 1)).view(3, len(x), -1)
    assert torch.equal(logits.argmax(dim=-1), result.predictions)
    assert torch.equal(result.success, result.predictions != y)
    assert result.accuracy(y)[0] < result.clean_accuracy(y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "fgsm", "loss": "dlr"}, "dlr"),
        ({"method": "uniform", "loss": "dlr"}, "dlr"),
        ({"method": "gaussian", "loss": "dlr"}, "dlr"),
        ({"method": "apgd", "loss": "margin"}, "loss"),
        ({"method": "apgd", "step_size": 0.01}, "step_size"),
        ({"method": "apgd", "targeted": 0}, "targeted"),
        ({"method": "apgd", "targeted": 5}, "targeted"),
        ({"method": "apgd", "targeted": True}, "targeted"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    model, x, y = mlp_case(n=10)  # 5 classes
    with pytest.raises(ValueError, match=message):
        run_attack(model, x, y, eps=0.1, **kwargs)


def test_dlr_needs_enough_classes() -> None:
    model = affine_model(classes=2)
    x, y, _ = affine_data(model, "inf", n=20)
    with pytest.raises(ValueError, match="at least 3 classes"):
        run_attack(model, x, y, method="apgd", loss="dlr", eps=0.1, bounds=None)
    model = affine_model(classes=3)
    target = torch.zeros_like(y)
    with pytest.raises(ValueError, match="at least 4 classes"):
        run_attack(model, x, y, method="apgd", loss="dlr", targeted=target, eps=0.1, bounds=None)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_targeted_reaches_a_given_target(loss: str) -> None:
    model = affine_model(classes=4, seed=3)
    x = torch.randn(100, 16, generator=generator(4), dtype=torch.float64)
    y = model(x).argmax(dim=1).detach()
    result = run_attack(
        model,
        x,
        y,
        method="apgd",
        loss=loss,
        targeted="least_likely",
        eps=[0.01, 5.0],
        steps=20,
        bounds=None,
        generator=generator(),
    )
    assert torch.equal(result.targets, result.clean_logits.argmin(dim=1))
    assert result.success[1].all()
    assert torch.equal(result.predictions[1], result.targets)
    assert result.success[0].float().mean() < 0.5
