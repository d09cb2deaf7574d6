"""The `adversarial` check: exact robust accuracy on affine models, bounds per eps, messages."""

from __future__ import annotations

import textwrap

import pytest
import torch
from scipy import stats

import robustness_checks
from robustness_checks.errors import SpecError
from robustness_checks.spec.parse import parse_spec_text


def affine_two_class(
    dim: int = 6, seed: int = 0
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 2-class affine model and data whose margins are known exactly."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(dim, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, dim, generator=generator))
        model.bias.copy_(torch.randn(2, generator=generator))
    x = torch.rand(300, dim, generator=generator)
    y = torch.randint(0, 2, (300,), generator=generator)
    w = model.weight.detach()
    b = model.bias.detach()
    sign = torch.where(y == 0, 1.0, -1.0)
    margin = sign * ((w[0] - w[1]) @ x.T + b[0] - b[1])  # label logit minus the other
    return model, x, y, margin


@pytest.mark.parametrize(("norm", "dual"), [("inf", 1), ("2", 2)])
def test_robust_accuracy_equals_the_closed_form_on_an_affine_model(norm: str, dual: int) -> None:
    model, x, y, margin = affine_two_class()
    w = model.weight.detach()
    difference_norm = torch.linalg.vector_norm(w[0] - w[1], ord=dual)
    eps = [0.05, 0.1, 0.2]
    result = robustness_checks.adversarial(
        model,
        (x, y),
        method="pgd",
        norm=norm,
        eps=eps,
        attack={"steps": 30},
        bounds=None,
        max_drop=1.0,
    )
    for e, row in zip(eps, result.details["per_eps"], strict=True):
        # The optimal attack lowers the margin by eps times the dual norm of w_y - w_o.
        robust = (margin > e * difference_norm).sum().item() / len(y)
        assert row["adversarial_accuracy"] == pytest.approx(robust, abs=1e-9)
    clean = (margin > 0).sum().item() / len(y)
    assert result.details["clean_accuracy"] == pytest.approx(clean)


def test_intervals_are_clopper_pearson_and_drop_is_paired() -> None:
    model, x, y, _ = affine_two_class(seed=1)
    result = robustness_checks.adversarial(
        model, (x, y), method="fgsm", eps=0.1, max_drop=1.0, bounds=None
    )
    row = result.details["per_eps"][0]
    n = len(y)
    fooled = round(row["accuracy_drop"] * n)
    exact = stats.binomtest(fooled, n).proportion_ci(0.95, method="exact")
    assert row["accuracy_drop_ci"] == pytest.approx([exact.low, exact.high])
    assert row["accuracy_drop"] == pytest.approx(
        result.details["clean_accuracy"] - row["adversarial_accuracy"]
    )
    assert result.value == pytest.approx(row["accuracy_drop"])
    assert result.ci == pytest.approx((exact.low, exact.high))


def test_bounds_per_eps_and_the_deciding_eps() -> None:
    model, x, y, _ = affine_two_class(seed=2)
    result = robustness_checks.adversarial(
        model, (x, y), eps=[0.01, 0.3], max_drop=[0.5, 0.01], attack={"steps": 10}, bounds=None
    )
    assert not result
    assert result.threshold == 0.01 and result.bound_name == "max_drop"
    assert "under PGD-Linf eps=0.3 exceeds max_drop 0.01 on 300 examples" in result.message
    passing = robustness_checks.adversarial(
        model, (x, y), eps=[0.01, 0.3], max_drop=[0.5, 0.99], bounds=None
    )
    assert passing and passing.threshold == 0.5  # the tighter of the two bounds is reported


def test_min_accuracy_and_no_bound() -> None:
    model, x, y, _ = affine_two_class(seed=3)
    measured = robustness_checks.adversarial(model, (x, y), eps=0.1, bounds=None)
    assert measured.passed and measured.comparison is None
    assert measured.metric == "adversarial_accuracy"
    failing = robustness_checks.adversarial(
        model, (x, y), eps=0.1, bounds=None, min_accuracy=measured.value + 0.01
    )
    assert not failing and "is below min_accuracy" in failing.message


def test_evaluations_count_every_forward_pass() -> None:
    model, x, y, _ = affine_two_class(seed=4)
    result = robustness_checks.adversarial(
        model,
        (x, y),
        eps=[0.1, 0.2],
        bounds=None,
        attack={"steps": 7, "restarts": 2},
        batch_size=64,
    )
    # One clean pass, then per restart and eps: a random start and 7 steps, all evaluated.
    assert result.evaluations == result.details["forward_passes"]
    assert result.evaluations == len(y) * (1 + 2 * 2 * (7 + 1))


def test_failing_examples_are_kept_inside_the_eps_ball(tmp_path) -> None:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn

    result = robustness_checks.adversarial(
        digits_cnn(pretrained=True), test_set(limit=128), eps=0.15, failing_examples=5
    )
    kept = result.details["failing_examples"]
    assert len(kept) == 5
    for row in kept:
        assert row["clean_prediction"] == row["label"] != row["adversarial_prediction"]
        assert row["perturbation_norm"] <= 0.15 + 1e-6
        assert max(abs(v) for v in row["perturbation"]) <= 0.15 + 1e-5
        adversarial = [a + d for a, d in zip(row["input"], row["perturbation"], strict=True)]
        assert min(adversarial) >= -1e-4 and max(adversarial) <= 1 + 1e-4
        assert row["shape"] == [1, 8, 8]


def test_data_outside_the_bounds_is_a_clear_error() -> None:
    model, x, y, _ = affine_two_class()
    with pytest.raises(robustness_checks.RobustnessError, match="outside the spec's bounds"):
        robustness_checks.adversarial(model, (x * 5, y), eps=0.1, bounds=(0.0, 1.0))


SPEC = """\
model: {factory: robustness_checks.demo.model:digits_cnn}
data: {factory: robustness_checks.demo.digits:test_set}
checks:
  - name: pgd
    type: adversarial
"""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("attack: {method: pgd}\nmax_drop: 0.1", "attack.eps is required"),
        ("attack: {method: pgd, eps: -0.1}", "greater than or equal to 0"),
        (
            "attack: {method: pgd, eps: [0.1, 0.2]}\nmax_drop: [0.1]",
            "max_drop has 1 values but attack.eps has 2",
        ),
        ("attack: {method: pgd, eps: 0.1}\nmax_drop: 1.5", "less than or equal to 1"),
        (
            "attack: {method: cw, eps: 0.1}",
            "'fgsm', 'pgd', 'apgd', 'square', 'auto', 'uniform' or 'gaussian'",
        ),
        ("attack: {method: fgsm, eps: 0.1, loss: dlr}", "loss dlr needs a multi-step"),
        ("attack: {method: square, eps: 0.1, targeted: 3}", "targeted cannot be used with"),
        ("attack: {method: pgd, eps: 0.1, version: fast}", "version cannot be used with"),
        ("attack: {method: auto, eps: 0.1, steps: 20}", "choose its budget with version"),
        ("attack: {method: apgd, eps: 0.1, step_size: 0.1}", "apgd sets its own step sizes"),
        ("attack: {method: square, eps: 0.1, queries: 0}", "greater than or equal to 1"),
        ("attack: {method: pgd, eps: 0.1}\ngradient_masking: ignore", "'fail', 'warn' or 'off'"),
        ("attack: {method: pgd, eps: 0.1, norm: 3}", "'inf' or '2'"),
        (
            "attack: {method: pgd, eps: 0.1, stepz: 3}",
            "unknown key 'stepz' (did you mean 'steps'?)",
        ),
    ],
)
def test_bad_adversarial_specs_are_refused(fields: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec_text(SPEC + textwrap.indent(fields, "    ") + "\n", "s.robustness.yaml")
    assert message in caught.value.render()
    assert "check 'pgd'" in caught.value.render()


def test_norm_spellings_are_accepted() -> None:
    for spelling in ("inf", "linf", "Linf", "2", "l2", "L2"):
        document = parse_spec_text(
            SPEC + f"    attack: {{eps: 0.1, norm: {spelling}}}\n", "s.robustness.yaml"
        )
        assert document.spec.checks[0].attack.norm in ("inf", "2")
