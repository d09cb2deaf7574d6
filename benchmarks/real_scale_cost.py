"""The real-scale cost cases of issue 26 on the CIFAR-shaped colour-digit models.

PGD-20 at two eps (2/255, 4/255) on 200 images with a bound (so the masking probe runs), and a
noise gate (sigma 0.05, 5 inputs, max_probability 1e-3), on `colour_resnet` and `colour_vgg`:
the attack's passes, the probe's and their ratio; each input's evaluations and the estimator
that decided it.

    .venv/bin/python benchmarks/real_scale_cost.py
"""

from __future__ import annotations

import time
import warnings

import robustness_checks
from robustness_checks.demo.colour_digits import colour_resnet, colour_test_set, colour_vgg


def main() -> None:
    x, y = colour_test_set(200)
    for name, model in (("colour_resnet", colour_resnet()), ("colour_vgg", colour_vgg())):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            attacked = robustness_checks.adversarial(
                model, (x, y), method="pgd", eps=[2 / 255, 4 / 255], steps=20, min_accuracy=0.0
            )
            seconds = time.perf_counter() - start
            probe = attacked.details.masking_probe
            print(
                f"{name}: PGD-20 at 2 eps on 200 images: {attacked.details.forward_passes:,} "
                f"attack passes + {probe['evaluations']:,} probe = {attacked.evaluations:,} "
                f"({attacked.evaluations / attacked.details.forward_passes:.3f}x), "
                f"probe {probe['stopped']!r}, {seconds:.0f} s"
            )
            start = time.perf_counter()
            gate = robustness_checks.noise(
                model, (x, y), sigma=0.05, inputs=5, max_probability=1e-3
            )
            rows = ", ".join(
                f"{row.index}: {row.evaluations:,} ({row.estimator}, p = {row.probability:.3g})"
                for row in gate.details.inputs
            )
            print(
                f"{name}: noise gate 1e-3 {gate.outcome} in {time.perf_counter() - start:.0f} s; "
                f"per input {rows}"
            )


if __name__ == "__main__":
    main()
