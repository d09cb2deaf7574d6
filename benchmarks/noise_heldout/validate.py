"""Seeds-by-inputs validation of the noise estimators on the held-out truths, as a table.

`python -m benchmarks.noise_heldout.validate` runs importance sampling and splitting on every
input of truths.json over 20 seeds (relative error 0.1, 100,000 evaluations) and prints, per
input: the truth, median evaluations, converged runs, intervals covering the truth, observed
spread over reported relative error, and evaluations over what plain Monte Carlo needs for the
same error, 1 / (p RE^2). Plain Monte Carlo's row is that closed form (its spread equals its
reported error by construction). `--models`, `--estimators` and `--seeds` narrow it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks.noise_heldout.models import load
from robustness_checks.demo.digits import test_set
from robustness_checks.failure_probability import NoiseEstimate, estimate_failure_probability

TRUTHS = Path(__file__).resolve().parent / "truths.json"
# Developed against: the MLP, the demo CNN's truths (../noise_truth.json) and, after the first
# version failed on it, the batch-norm CNN. Held out: plain_cnn (its first figures came from
# an earlier version; nothing was tuned on it) and deep_mlp (trained after the last change but
# the tail rule, which was set on bn_cnn).
DEVELOPMENT = ("mlp", "bn_cnn")


@dataclass
class Row:
    """One estimator on one input over the seeds."""

    truth: dict
    estimator: str
    results: list[NoiseEstimate] | list[SimpleNamespace]

    @property
    def covers(self) -> int:
        return sum(r.ci[0] <= self.truth["p"] <= r.ci[1] for r in self.results)

    @property
    def converged(self) -> int:
        return sum(r.converged for r in self.results)

    @property
    def evaluations(self) -> float:
        return statistics.median(r.evaluations for r in self.results)

    @property
    def spread_over_reported(self) -> float:
        """Observed relative spread of the estimates over their median reported error."""
        estimates = [r.probability for r in self.results]
        spread = statistics.stdev(estimates) / statistics.fmean(estimates)
        return spread / statistics.median(r.relative_error for r in self.results)

    @property
    def ratio_to_mc(self) -> float:
        """Median evaluations over 1 / (p RE^2), plain Monte Carlo's cost for the same error."""
        p = self.truth["p"]
        reached = statistics.median(r.relative_error for r in self.results)
        return self.evaluations * p * reached**2 / (1 - p)


def seeded_runs(
    model: torch.nn.Module,
    image: torch.Tensor,
    truth: dict,
    sigma: float,
    estimator: str,
    seeds: range,
    budget: int,
) -> Row:
    """`estimator` (relative error 0.1, `budget` evaluations) on one input over `seeds`."""
    results = [
        estimate_failure_probability(
            model,
            image,
            truth["label"],
            sigma=sigma,
            estimator=estimator,
            relative_error=0.1,
            max_evaluations=budget,
            generator=torch.Generator().manual_seed(seed),
        )
        for seed in seeds
    ]
    return Row(truth, estimator, results)


def run(truth: dict, estimator: str, seeds: range, budget: int) -> Row:
    """`estimator` on one input over `seeds`."""
    images, _ = test_set()
    image = images[truth["index"]]
    return seeded_runs(load(truth["model"]), image, truth, 0.2, estimator, seeds, budget)


def load_rows(path: Path, truths: list[dict]) -> list[Row]:
    """Rows from a file written by `save`, judged against the current truths."""
    stored = json.loads(path.read_text())
    rows = []
    for truth in truths:
        for estimator in ("importance", "splitting"):
            runs = stored.get(f"{truth['model']}:{truth['index']}:{estimator}")
            if runs:
                results = [SimpleNamespace(**{**run, "ci": tuple(run["ci"])}) for run in runs]
                rows.append(Row(truth, estimator, results))
    return rows


def save(rows: list[Row], path: Path) -> None:
    """Every run's estimate, keyed by model, input and estimator (merged into `path`)."""
    stored = json.loads(path.read_text()) if path.is_file() else {}
    for row in rows:
        key = f"{row.truth['model']}:{row.truth['index']}:{row.estimator}"
        stored[key] = [
            {
                "probability": r.probability,
                "relative_error": r.relative_error,
                "ci": list(r.ci),
                "evaluations": r.evaluations,
                "converged": r.converged,
                "unreliable": r.unreliable,
            }
            for r in row.results
        ]
    path.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")


def table(rows: list[Row]) -> str:
    """Markdown table, one line per input and estimator, plus plain Monte Carlo's cost."""
    lines = [
        "| model | input | truth p (95% CI) | estimator | median evaluations | converged | "
        "covers | spread / reported | ratio to MC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t = row.truth
        lines.append(
            f"| {t['model']} | test[{t['index']}] | {t['p']:.3g} ({t['ci95'][0]:.2g} to "
            f"{t['ci95'][1]:.2g}) | {row.estimator} | {row.evaluations:,.0f} | "
            f"{row.converged}/{len(row.results)} | {row.covers}/{len(row.results)} | "
            f"{row.spread_over_reported:.2f} | {row.ratio_to_mc:.2g} |"
        )
        if row.estimator == "splitting":
            p = t["p"]
            lines.append(
                f"| {t['model']} | test[{t['index']}] | | mc (closed form) | "
                f"{(1 - p) / (p * 0.01):,.0f} | | | 1.00 | 1 |"
            )
    return "\n".join(lines)


def meets(importance: Row, splitting: Row) -> list[str]:
    """The bounds of issue 17 that importance sampling misses on this input (empty: all met)."""
    n = len(importance.results)
    missed = []
    if importance.covers < 0.85 * n:
        missed.append("coverage")
    if not 1 / 1.5 <= importance.spread_over_reported <= 1.5:
        missed.append("spread")
    if splitting.converged > n / 2 and importance.converged <= n / 2:
        missed.append("convergence")
    share = 1 / 3 if importance.truth["p"] <= 1e-5 else 1.0
    if importance.evaluations > share * splitting.evaluations:
        missed.append("cost")
    return missed


def comparison(rows: list[Row]) -> str:
    """One line per input: importance sampling next to splitting and plain Monte Carlo."""
    lines = [
        "| model | input | truth p (95% CI) | MC need | importance: evaluations, converged, "
        "covers, spread/reported, ratio to MC | splitting: evaluations, converged, covers, "
        "spread/reported | importance / splitting | bounds |",
        "|---|---|---|---:|---|---|---:|---|",
    ]
    pairs = {}
    for row in rows:
        pairs.setdefault((row.truth["model"], row.truth["index"]), {})[row.estimator] = row
    for (model, index), pair in pairs.items():
        if set(pair) != {"importance", "splitting"}:
            continue
        imp, split = pair["importance"], pair["splitting"]
        t, n = imp.truth, len(imp.results)
        missed = meets(imp, split)
        lines.append(
            f"| {model} | test[{index}] | {t['p']:.3g} ({t['ci95'][0]:.3g} to "
            f"{t['ci95'][1]:.3g}) | {(1 - t['p']) / (0.01 * t['p']):,.0f} | "
            f"{imp.evaluations:,.0f}, {imp.converged}/{n}, {imp.covers}/{n}, "
            f"{imp.spread_over_reported:.2f}, {imp.ratio_to_mc:.2g} | "
            f"{split.evaluations:,.0f}, {split.converged}/{n}, {split.covers}/{n}, "
            f"{split.spread_over_reported:.2f} | {imp.evaluations / split.evaluations:.2f} | "
            f"{'met' if not missed else 'missed: ' + ', '.join(missed)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", help="default: every model in truths.json")
    parser.add_argument("--indices", type=int, nargs="*", help="default: every input")
    parser.add_argument("--estimators", nargs="*", default=["importance", "splitting"])
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 20], metavar=("FROM", "TO"))
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--truths", type=Path, default=TRUTHS)
    parser.add_argument("--save", type=Path, help="merge every run's estimate into this JSON")
    parser.add_argument("--load", type=Path, help="print the table of saved runs, run nothing")
    args = parser.parse_args()
    truths = json.loads(args.truths.read_text())["inputs"]
    rows = load_rows(args.load, truths) if args.load else []
    for truth in [] if args.load else truths:
        if args.models and truth["model"] not in args.models:
            continue
        if args.indices and truth["index"] not in args.indices:
            continue
        for estimator in args.estimators:
            started = time.time()
            rows.append(run(truth, estimator, range(*args.seeds), args.budget))
            print(table(rows[-1:]).splitlines()[2], f"[{time.time() - started:.0f} s]", flush=True)
    if args.save:
        save(rows, args.save)
    development = [r for r in rows if r.truth["model"] in DEVELOPMENT]
    held_out = [r for r in rows if r.truth["model"] not in DEVELOPMENT]
    for title, part in (("Development", development), ("Held out", held_out)):
        if part:
            both = {r.estimator for r in part} >= {"importance", "splitting"}
            print(f"\n{title}\n\n{comparison(part) if both else table(part)}")


if __name__ == "__main__":
    main()
