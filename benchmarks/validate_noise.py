"""Seeds-by-inputs validation of a noise estimator against the Monte Carlo truths of the CNN."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn
from robustness_checks.failure_probability import NoiseEstimate, estimate_failure_probability

TRUTHS = Path(__file__).resolve().parent / "noise_truth.json"


def summary(truth: dict, results: list[NoiseEstimate]) -> str:
    """Coverage, bias, spread against reported relative error, and cost over the seeds."""
    p = truth["p"]
    # The truth's own relative error, from its 95% Clopper-Pearson interval.
    truth_error = (truth["ci95"][1] - truth["ci95"][0]) / (2 * 1.96 * p)
    estimates = [r.probability for r in results]
    mean = statistics.fmean(estimates)
    covers = sum(r.ci[0] <= p <= r.ci[1] for r in results)
    joint = sum(
        abs(math.log(r.probability / p)) <= 1.96 * math.hypot(r.relative_error, truth_error)
        for r in results
    )
    # Mean squared standardized error: about 1 + (truth error / RE)^2 when RE is right.
    z2 = statistics.fmean(
        ((r.probability - p) / (r.relative_error * r.probability)) ** 2 for r in results
    )
    evaluations = [r.evaluations for r in results]
    return (
        f"test[{truth['index']}] p {p:.3g} (truth RE {truth_error:.3f}): {len(results)} seeds, "
        f"mean/truth {mean / p:.3f}, spread {statistics.stdev(estimates) / mean:.3f}, "
        f"reported RE median {statistics.median(r.relative_error for r in results):.3f}, "
        f"covers {covers}, covers with truth error {joint}, mean z^2 {z2:.2f}, "
        f"converged {sum(r.converged for r in results)}, evaluations median "
        f"{statistics.median(evaluations):,.0f} max {max(evaluations):,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--indices", type=int, nargs="*", help="default: every stored truth")
    parser.add_argument("--seeds", type=int, nargs=2, default=[200, 240], metavar=("FROM", "TO"))
    parser.add_argument("--estimator", default="importance")
    parser.add_argument("--budget", type=int, default=100_000)
    args = parser.parse_args()
    truths = json.loads(TRUTHS.read_text())
    model = digits_cnn(pretrained=True).eval()
    images, labels = test_set()
    for truth in truths["inputs"]:
        if args.indices and truth["index"] not in args.indices:
            continue
        started = time.time()
        results = [
            estimate_failure_probability(
                model,
                images[truth["index"]],
                int(labels[truth["index"]]),
                sigma=truths["sigma"],
                estimator=args.estimator,
                relative_error=0.1,
                max_evaluations=args.budget,
                generator=torch.Generator().manual_seed(seed),
            )
            for seed in range(*args.seeds)
        ]
        print(summary(truth, results), f"[{time.time() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
