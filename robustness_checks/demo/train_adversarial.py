"""PGD adversarial training of a DigitsCNN: `python -m robustness_checks.demo.train_adversarial`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustness_checks.attacks import run_attack
from robustness_checks.demo.digits import test_set, train_set
from robustness_checks.demo.model import DigitsCNN, adversarial_weights_path

EPS = 0.2  # L-inf radius trained against (inputs in [0, 1])
PGD_STEPS = 10  # inner maximisation steps per batch
REL_STEP_SIZE = 2.5  # inner step = REL_STEP_SIZE * eps / PGD_STEPS
EPOCHS = 200
RAMP_EPOCHS = 60  # eps grows linearly from 0 to EPS over these epochs, then stays at EPS
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
SEED = 0


def pgd_linf(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int, generator: torch.Generator
) -> Tensor:
    """Madry et al.'s inner maximisation: uniform start, signed-gradient steps, projection."""
    if eps <= 0.0:
        return x
    step = REL_STEP_SIZE * eps / steps
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2.0 - 1.0
    adv = (x + eps * noise).clamp(0.0, 1.0)
    for _ in range(steps):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
        adv = adv.detach() + step * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0.0, 1.0)
    return adv.detach()


def train(epochs: int = EPOCHS, seed: int = SEED, eps: float = EPS) -> DigitsCNN:
    """Adversarially train a fresh DigitsCNN deterministically from `seed` (Adam, PGD-10).

    The adversarial points are made in eval mode (no dropout) and the model is updated on them
    alone, in train mode. The per-batch eps ramps linearly from 0 to `eps` over the first
    RAMP_EPOCHS (scaled to `epochs` when fewer), which keeps training from collapsing early.
    """
    torch.manual_seed(seed)
    x, y = train_set()
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    order_generator = torch.Generator().manual_seed(seed)
    noise_generator = torch.Generator().manual_seed(seed + 1)
    batches = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
    ramp = max(1, min(RAMP_EPOCHS, epochs // 2) * batches)
    done = 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=order_generator)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            done += 1
            batch_eps = eps * min(1.0, done / ramp)
            model.eval()
            adv = pgd_linf(model, x[batch], y[batch], batch_eps, PGD_STEPS, noise_generator)
            model.train()
            optimizer.zero_grad()
            F.cross_entropy(model(adv), y[batch]).backward()
            optimizer.step()
    return model.eval()


def evaluate(model: nn.Module, eps: float = EPS) -> dict[str, float]:
    """Clean accuracy and robust accuracy under PGD-20 and APGD-CE-100 at `eps` on the test set."""
    x, y = test_set()
    with torch.no_grad():
        figures = {"clean": (model(x).argmax(dim=1) == y).float().mean().item()}
    for name, method, steps in (("pgd20", "pgd", 20), ("apgd_ce100", "apgd", 100)):
        result = run_attack(
            model,
            x,
            y,
            method=method,
            eps=eps,
            steps=steps,
            generator=torch.Generator().manual_seed(0),
        )
        figures[name] = 1.0 - result.success.float().mean().item()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=adversarial_weights_path())
    args = parser.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    start = time.perf_counter()
    model = train(args.epochs, args.seed)
    elapsed = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    figures = evaluate(model)
    print(
        f"trained in {elapsed:.1f}s, saved {args.out} ({args.out.stat().st_size} bytes); "
        f"test accuracy clean {figures['clean']:.4f}, robust at eps {EPS}: "
        f"PGD-20 {figures['pgd20']:.4f}, APGD-CE-100 {figures['apgd_ce100']:.4f}"
    )


if __name__ == "__main__":
    main()
