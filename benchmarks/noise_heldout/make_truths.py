"""Monte Carlo truths for the held-out noise validation, written to truths.json.

Run `python -m benchmarks.noise_heldout.make_truths`.

For each held-out model: a cheap screen (4,096 plain draws per correctly classified test input,
then a 20,000-evaluation splitting estimate for those with no failure) picks the inputs whose
estimated p is nearest each target; each gets a plain Monte Carlo truth of at least 1e7 draws
(3e7 below p = 1e-5, more where the model is cheap enough for 400 failures), stored with its
exact Clopper-Pearson interval in truths.json. Takes about half an hour on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.make_noise_truth import SIGMA, count_failures, truth_fields, truths_document
from benchmarks.noise_heldout.models import ARCHITECTURES, load
from robustness_checks.demo.digits import test_set
from robustness_checks.failure_probability import estimate_failure_probability

OUTPUT = Path(__file__).resolve().parent / "truths.json"
TARGETS = {
    "bn_cnn": [1e-3, 1e-4, 1e-5, 3e-6],
    "plain_cnn": [5e-4, 5e-5, 5e-6, 2e-6],
    "mlp": [1e-3, 1e-4, 1e-5, 1e-6],
    "deep_mlp": [3e-4, 3e-5, 3e-6],
}
# Largest truth per input, set by each model's speed on two cores (seconds per 1e7 draws:
# bn_cnn 115, plain_cnn 48, mlp 6).
MAX_DRAWS = {
    "bn_cnn": 40_000_000,
    "plain_cnn": 60_000_000,
    "mlp": 300_000_000,
    "deep_mlp": 80_000_000,
}


def screen(name: str, model: nn.Module, frequent: bool = False) -> dict[int, float]:
    """Estimated p of every correctly classified test input with no failure in 4,096 draws
    (with `frequent`, also k / 4,096 for those with 1 to 40 failures there)."""
    images, labels = test_set()
    with torch.inference_mode():
        correct = (model(images).argmax(1) == labels).nonzero().flatten().tolist()
    estimates = {}
    for index in correct:
        failures = count_failures(model, images[index], int(labels[index]), 4096, index)[0]
        if failures:
            if frequent and failures <= 40:
                estimates[index] = failures / 4096
            continue
        estimate = estimate_failure_probability(
            model,
            images[index],
            int(labels[index]),
            sigma=SIGMA,
            estimator="splitting",
            relative_error=0.3,
            max_evaluations=20_000,
            generator=torch.Generator().manual_seed(index),
        )
        estimates[index] = estimate.probability
    print(f"{name}: screened {len(correct)} inputs, {len(estimates)} rare", flush=True)
    return estimates


def pick(
    estimates: dict[int, float], targets: list[float], used: tuple[int, ...] = ()
) -> list[int]:
    """For each target, the unused input whose estimate is nearest it in log space."""
    chosen: list[int] = list(used)
    for target in targets:
        index = min(
            (i for i, p in estimates.items() if p > 0 and i not in chosen),
            key=lambda i: abs(math.log(estimates[i] / target)),
        )
        chosen.append(index)
    return chosen[len(used) :]


def truth(
    name: str,
    model: nn.Module,
    index: int,
    screened: float,
    failures: int = 400,
    max_draws: int = 0,
) -> dict:
    """A plain Monte Carlo truth for one input with its exact 95% interval."""
    images, labels = test_set()
    label = int(labels[index])
    wanted = 30_000_000 if screened < 1e-5 else 10_000_000
    draws = min(max_draws or MAX_DRAWS[name], max(wanted, int(failures / screened)))
    k, n = count_failures(model, images[index], label, draws, 1_000_003 + index)
    return {"model": name, "index": index, "label": label, **truth_fields(k, n), "screen": screened}


def extend(output: Path, name: str, index: int, draws: int) -> None:
    """More draws for one stored truth, with a seed not used before; counts are added."""
    stored = json.loads(output.read_text())
    entry = next(t for t in stored["inputs"] if t["model"] == name and t["index"] == index)
    images, _ = test_set()
    seed = 2_000_003 + index + 7919 * entry.get("extensions", 0)
    k, n = count_failures(load(name), images[index], entry["label"], draws, seed)
    entry.update(truth_fields(entry["k"] + k, entry["n"] + n))
    entry["extensions"] = entry.get("extensions", 0) + 1
    output.write_text(json.dumps(stored, indent=2) + "\n")
    print(json.dumps(entry), flush=True)


def add(output: Path, name: str, targets: list[float], max_draws: int) -> None:
    """Screen one model again (frequent failures included) and add a truth for the unused
    input nearest each target, of at least 1e7 draws and 1,000 / p (at most `max_draws`)."""
    stored = json.loads(output.read_text())
    model = load(name)
    used = tuple(t["index"] for t in stored["inputs"] if t["model"] == name)
    estimates = screen(name, model, frequent=True)
    for index in pick(estimates, targets, used):
        entry = truth(name, model, index, estimates[index], failures=1000, max_draws=max_draws)
        stored["inputs"] = sorted([*stored["inputs"], entry], key=lambda t: (t["model"], t["p"]))
        output.write_text(json.dumps(stored, indent=2) + "\n")
        print(json.dumps(entry), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--extend",
        nargs=3,
        metavar=("MODEL", "INDEX", "DRAWS"),
        help="add DRAWS fresh draws (another seed) to one stored truth and re-derive it",
    )
    parser.add_argument(
        "--add",
        nargs="+",
        metavar=("MODEL", "TARGET"),
        help="screen MODEL again and add a truth for the unused input nearest each TARGET p",
    )
    parser.add_argument("--max-draws", type=float, default=0, help="with --add: draw cap")
    args = parser.parse_args()
    if args.add:
        add(args.output, args.add[0], [float(t) for t in args.add[1:]], int(args.max_draws))
        return
    if args.extend:
        extend(args.output, args.extend[0], int(args.extend[1]), int(float(args.extend[2])))
        return
    torch.manual_seed(0)
    stored = json.loads(args.output.read_text()) if args.output.is_file() else {"inputs": []}
    inputs = [t for t in stored["inputs"] if t["model"] not in args.models]
    seconds = stored.get("seconds", {})
    for name in args.models:
        started = time.time()
        model = load(name)
        estimates = screen(name, model)
        for index in pick(estimates, TARGETS[name]):
            inputs.append(truth(name, model, index, estimates[index]))
            print(json.dumps(inputs[-1]), f"{time.time() - started:.0f} s", flush=True)
        seconds[name] = round(time.time() - started)
        result = truths_document(
            "benchmarks.noise_heldout.models:load(name)",
            "robustness_checks.demo.digits:test_set()",
            seconds,
            inputs,
        )
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
