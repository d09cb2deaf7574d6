"""The noise gate at its bound on the CIFAR-shaped models: inputs whose p is far below 1e-5.

    PYTHONPATH=. .venv/bin/python -m benchmarks.noise_real_scale.gate

Per model, the test inputs of widest clean margin with no failure in DRAWS exact Monte Carlo
draws (drawn after the stem, `sampler`; so p < 1.8e-6 at 95%, by Clopper-Pearson) are
gated by the noise check with `max_probability: 1e-3` (its defaults otherwise): each must pass,
and the evaluations it spent per input are printed.
"""

from __future__ import annotations

import time

import torch
from scipy import stats

import robustness_checks
from benchmarks.noise_real_scale.make_truths import SIGMA
from benchmarks.noise_real_scale.models import ARCHITECTURES, load
from benchmarks.noise_real_scale.sampler import count_failures
from robustness_checks.demo.colour_digits import colour_test_set

DRAWS = 2_000_000
INPUTS = 5


def rare_inputs(name: str) -> tuple[list[int], float]:
    """INPUTS test indices with no failure in DRAWS draws, and the 95% upper bound on p."""
    model = load(name)
    x, y = colour_test_set()
    with torch.inference_mode():
        logits = model(x)
    own = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    margin = own - logits.scatter(1, y.unsqueeze(1), -torch.inf).amax(dim=1)
    chosen = []
    for index in margin.argsort(descending=True).tolist():  # widest clean margin first
        if count_failures(model, x[index], int(y[index]), SIGMA, DRAWS, 7 + index)[0] == 0:
            chosen.append(index)
        if len(chosen) == INPUTS:
            break
    n = -(-DRAWS // 32768) * 32768
    upper = stats.binomtest(0, n).proportion_ci(0.95, method="exact").high
    return chosen, float(upper)


def main() -> None:
    torch.set_num_threads(1)
    x, y = colour_test_set()
    for name in ARCHITECTURES:
        indices, upper = rare_inputs(name)
        started = time.perf_counter()
        result = robustness_checks.noise(
            load(name), (x, y), sigma=SIGMA, indices=indices, max_probability=1e-3
        )
        rows = ", ".join(
            f"{row.index}: {row.evaluations:,} ({row.estimator})" for row in result.details.inputs
        )
        print(
            f"{name}: p < {upper:.2g} on every input; gate at 1e-3 {result.outcome} in "
            f"{time.perf_counter() - started:.0f} s; evaluations per input {rows}"
        )


if __name__ == "__main__":
    main()
