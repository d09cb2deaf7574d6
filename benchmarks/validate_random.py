"""Held-out random models: `method: auto` against a 100-step, 20-draw EOT-PGD reference.

For each model (Gaussian input noise at two sigmas, dropout left on, a random resize-and-pad
defence, noise in front of another seed and of the adversarially trained CNN) on the first 100
test digits at L-inf eps 0.1, it prints the clean expected accuracy, the reference's expected
accuracy (PGD averaging the cross-entropy of 20 draws per step, step eps / 10, judged by 64 fresh
draws) with its interval, the adversarial check's figure under `method: auto` with its interval
and cost in forward passes, auto's points re-judged by 64 other draws, and how far a `uniform`
draw at eps 1e-6 (50 restarts) moves expected accuracy against its interval.

    .venv/bin/python benchmarks/validate_random.py
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import robustness_checks
from robustness_checks.attacks import run_attack
from robustness_checks.attacks.expectation import expected_correct
from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn, digits_cnn_adversarial
from robustness_checks.demo.randomised import (
    InputNoise,
    dropout_on_cnn,
    noisy_input_cnn,
    resize_pad_cnn,
)
from robustness_checks.metrics.bounded_mean import bounded_mean_interval

EPS, STEPS, EOT, JUDGE = 0.1, 100, 20, 64


def models() -> dict[str, nn.Module]:
    return {
        "input noise sigma 0.15": noisy_input_cnn(0.15),
        "input noise sigma 0.3": noisy_input_cnn(0.3),
        "dropout left on (p 0.25)": dropout_on_cnn(),
        "random resize-and-pad (6 to 8 px)": resize_pad_cnn(6),
        "input noise 0.15, CNN seed 1": noisy_input_cnn(0.15, seed=1),
        "input noise 0.15, adversarially trained CNN": InputNoise(digits_cnn_adversarial(), 0.15),
    }


def eot_pgd(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """L-inf PGD from a uniform start, ascending the cross-entropy averaged over EOT draws."""
    step = EPS / 10
    delta = ((x + EPS * (2 * torch.rand_like(x) - 1)).clamp(0, 1) - x).detach()
    for _ in range(STEPS):
        leaf = delta.clone().requires_grad_(True)
        loss = F.cross_entropy(model((x + leaf).repeat(EOT, 1, 1, 1)), y.repeat(EOT))
        (grad,) = torch.autograd.grad(loss, leaf)
        delta = (delta + step * grad.sign()).clamp(-EPS, EPS)
        delta = ((x + delta).clamp(0, 1) - x).detach()
    return x + delta


def main() -> None:
    x, y = test_set(100)
    header = (
        "| model | clean | EOT-PGD reference [95% CI] | auto (check) [95% CI] | forward passes "
        "| auto's points, fresh draws | uniform eps 1e-6: drop [95% CI] |"
    )
    print(header)
    print("|" + "---|" * 7)
    for name, model in models().items():
        model.eval()
        torch.manual_seed(0)
        reference = expected_correct(model, eot_pgd(model, x, y), y, JUDGE)
        ref_low, ref_high = bounded_mean_interval(reference.numpy(), 0.95)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check = robustness_checks.adversarial(
                model, (x, y), method="auto", eps=EPS, gradient_masking="warn"
            )
            uniform = robustness_checks.adversarial(
                model, (x, y), method="uniform", eps=1e-6, restarts=50
            )
        torch.manual_seed(1)
        attacked = run_attack(model, x, y, method="auto", version="rand", eps=EPS)
        torch.manual_seed(2)
        rejudged = expected_correct(model, attacked.adversarial[0], y, JUDGE).mean()
        row = uniform.details.per_eps[0]
        low, high = check.ci
        print(
            f"| {name} | {check.details.clean_accuracy:.3f} | {float(reference.mean()):.3f} "
            f"[{ref_low:.3f}, {ref_high:.3f}] | {check.value:.3f} [{low:.3f}, {high:.3f}] "
            f"| {check.details.forward_passes:,} | {float(attacked.accuracy(y)):.3f} -> "
            f"{float(rejudged):.3f} | {row.accuracy_drop:+.3f} [{row.accuracy_drop_ci[0]:.3f}, "
            f"{row.accuracy_drop_ci[1]:.3f}] |",
            flush=True,
        )
    deterministic = digits_cnn(pretrained=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        control = robustness_checks.adversarial(deterministic, (x, y), method="auto", eps=EPS)
    print(
        f"\ncontrol, the deterministic CNN: {control.condition}, value {control.value:.3f}, "
        f"random: {control.details.model_randomness.random}"
    )


if __name__ == "__main__":
    main()
