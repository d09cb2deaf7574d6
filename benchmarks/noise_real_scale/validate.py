"""The held-out noise table on the real-scale tier: importance sampling and splitting over 20
seeds on every input of truths.json, judged by the held-out bounds.

    PYTHONPATH=. .venv/bin/python -m benchmarks.noise_real_scale.validate --save results.json

Same bounds as the digits table (benchmarks/noise_heldout/validate.py): 95% intervals cover the
truth on at least 17 of 20 seeds, the spread of the estimates over seeds is within 1.5x of the
reported relative error both ways, and importance sampling costs no more than splitting (at
most a third of it at p <= 1e-5). Both models are held out: nothing was tuned on them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.noise_heldout.validate import Row, comparison, load_rows, save, seeded_runs, table
from benchmarks.noise_real_scale.models import load
from robustness_checks.demo.colour_digits import colour_test_set

HERE = Path(__file__).resolve().parent
TRUTHS = HERE / "truths.json"


def run(truth: dict, sigma: float, estimator: str, seeds: range, budget: int) -> Row:
    """`estimator` on one input over `seeds` (relative error 0.1, `budget` evaluations)."""
    images, _ = colour_test_set()
    image = images[truth["index"]]
    return seeded_runs(load(truth["model"]), image, truth, sigma, estimator, seeds, budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", nargs="*", default=["importance", "splitting"])
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 20], metavar=("FROM", "TO"))
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--models", nargs="*", help="default: every model in truths.json")
    parser.add_argument("--indices", type=int, nargs="*", help="default: every input")
    parser.add_argument("--save", type=Path, help="merge every run's estimate into this JSON")
    parser.add_argument("--load", type=Path, help="print the table of saved runs, run nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    stored = json.loads(TRUTHS.read_text())
    truths = [
        t
        for t in stored["inputs"]
        if (not args.models or t["model"] in args.models)
        and (not args.indices or t["index"] in args.indices)
    ]
    rows = load_rows(args.load, truths) if args.load else []
    for truth in [] if args.load else truths:
        for estimator in args.estimators:
            started = time.time()
            rows.append(run(truth, stored["sigma"], estimator, range(*args.seeds), args.budget))
            print(table(rows[-1:]).splitlines()[2], f"[{time.time() - started:.0f} s]", flush=True)
    if args.save:
        save(rows, args.save)
    both = {r.estimator for r in rows} >= {"importance", "splitting"}
    print(f"\nHeld out\n\n{comparison(rows) if both else table(rows)}")


if __name__ == "__main__":
    main()
