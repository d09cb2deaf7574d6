"""Print the docs' near-OOD table: every `ood` score on the demo's digits 0-5 model vs digits 6-9.

Run: .venv/bin/python benchmarks/near_ood_table.py (CPU, about a minute on two cores).
"""

from __future__ import annotations

from typing import Any

import torch

import robustness_checks
from robustness_checks.demo.digits import HELD_OUT_CLASSES, KNOWN_CLASSES, test_set, train_set
from robustness_checks.demo.model import digits_cnn_known_classes

# (row label, score, extra keywords)
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("msp", "msp", {}),
    ("entropy", "entropy", {}),
    ("energy", "energy", {}),
    ("max_logit", "max_logit", {}),
    ("odin (T 1000, eps 0.0014)", "odin", {}),
    (
        "mutual_information (MC dropout, 20)",
        "mutual_information",
        {"uncertainty": {"method": "mc_dropout", "samples": 20}},
    ),
    ("mahalanobis", "mahalanobis", {}),
    ("relative_mahalanobis", "relative_mahalanobis", {}),
    ("knn (k 50)", "knn", {"k": 50}),
    ("knn (k 5)", "knn", {"k": 5}),
    ("vim (dim 32)", "vim", {}),
    ("react (percentile 90)", "react", {}),
    ("ash (ASH-S, percentile 65)", "ash", {}),
]


def interval(result: Any) -> str:
    low, high = result.ci
    return f"{result.value:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    torch.manual_seed(0)
    model = digits_cnn_known_classes()
    data = test_set(classes=KNOWN_CLASSES)
    ood = test_set(classes=HELD_OUT_CLASSES)[0]
    fit = train_set(classes=KNOWN_CLASSES)
    print(f"ID {len(data[0])} test digits 0-5, OOD {len(ood)} test digits 6-9, fit {len(fit[0])}")
    print("| score | AUROC [95% CI] | FPR95 [95% CI] |")
    print("|---|---|---|")
    for label, score, extra in ROWS:
        values = [
            robustness_checks.ood(
                model, data, ood, score=score, metric=metric, fit_data=fit, seed=0, **extra
            )
            for metric in ("auroc", "fpr95")
        ]
        print(f"| {label} | {interval(values[0])} | {interval(values[1])} |")


if __name__ == "__main__":
    main()
