"""Monte Carlo truths for the real-scale noise tier, written to truths.json.

Run `python -m benchmarks.noise_real_scale.make_truths` (about 40 minutes on one CPU thread).

Per model: a screen (4,096 draws per correctly classified test input; a 20,000-evaluation
importance-sampling estimate for those with no failure there, k / 4,096 for 1 to 40) picks the
input nearest each target p; each gets plain Monte Carlo truth of at least 1e7 draws and
1,000 / p (at most MAX_DRAWS), drawn after the stem (`sampler`), with its exact 95% interval.
`--add MODEL TARGET ... --max-draws N` adds truths to the file (runs may go side by side, each
with `--exclude` of the inputs the others took).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.make_noise_truth import truth_fields, truths_document
from benchmarks.noise_heldout.make_truths import pick
from benchmarks.noise_real_scale.models import ARCHITECTURES, PatchModel, load
from benchmarks.noise_real_scale.sampler import count_failures
from robustness_checks.demo.colour_digits import colour_test_set
from robustness_checks.failure_probability import estimate_failure_probability

OUTPUT = Path(__file__).resolve().parent / "truths.json"
SIGMA = 0.3
TARGETS = [8e-4, 3e-4, 1e-4, 4e-5, 2e-5, 1e-5]
MIN_DRAWS = 10_000_000
MAX_DRAWS = 60_000_000


def screen(name: str, model: PatchModel) -> dict[int, float]:
    """Estimated p of every correctly classified test input that fails at most 40 in 4,096."""
    images, labels = colour_test_set()
    with torch.inference_mode():
        correct = (model(images).argmax(1) == labels).nonzero().flatten().tolist()
    estimates = {}
    for index in correct:
        label = int(labels[index])
        failures = count_failures(model, images[index], label, SIGMA, 4096, index)[0]
        if failures > 40:
            continue
        if failures:
            estimates[index] = failures / 4096
            continue
        estimates[index] = estimate_failure_probability(
            model,
            images[index],
            label,
            sigma=SIGMA,
            relative_error=0.3,
            max_evaluations=20_000,
            generator=torch.Generator().manual_seed(index),
        ).probability
    print(f"{name}: screened {len(correct)} inputs, {len(estimates)} kept", flush=True)
    return estimates


def cached_screen(name: str, model: PatchModel) -> dict[int, float]:
    """`screen`, kept in the temporary directory so that `--add` runs can share one screen."""
    path = Path(tempfile.gettempdir()) / f"robustness_checks_screen_{name}.json"
    if path.is_file():
        return {int(i): p for i, p in json.loads(path.read_text()).items()}
    estimates = screen(name, model)
    path.write_text(json.dumps(estimates))
    return estimates


def truth(
    name: str, model: PatchModel, index: int, screened: float, max_draws: int = MAX_DRAWS
) -> dict:
    """A plain Monte Carlo truth for one input with its exact 95% interval."""
    images, labels = colour_test_set()
    label = int(labels[index])
    draws = min(max_draws, max(MIN_DRAWS, int(1000 / screened)))
    k, n = count_failures(model, images[index], label, SIGMA, draws, 1_000_003 + index)
    return {"model": name, "index": index, "label": label, **truth_fields(k, n), "screen": screened}


def add(output: Path, name: str, targets: list[float], max_draws: int, exclude: list[int]) -> None:
    """A truth for the input nearest each target p that `output` (and `exclude`) do not hold
    yet, each added to `output` as soon as it is drawn (several `--add` runs may share it)."""
    model = load(name)
    estimates = cached_screen(name, model)
    used = {t["index"] for t in json.loads(output.read_text())["inputs"] if t["model"] == name}
    for index in pick(estimates, targets, tuple(used | set(exclude))):
        entry = truth(name, model, index, estimates[index], max_draws)
        stored = json.loads(output.read_text())
        stored["inputs"] = sorted([*stored["inputs"], entry], key=lambda t: (t["model"], t["p"]))
        output.write_text(json.dumps(stored, indent=2) + "\n")
        print(json.dumps(entry), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--add", nargs="+", metavar=("MODEL", "TARGET"), help="add truths")
    parser.add_argument("--max-draws", type=float, default=MAX_DRAWS, help="with --add")
    parser.add_argument("--exclude", type=int, nargs="*", default=[], help="with --add")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.add:
        targets = [float(t) for t in args.add[1:]]
        add(args.output, args.add[0], targets, int(args.max_draws), args.exclude)
        return
    stored = json.loads(args.output.read_text()) if args.output.is_file() else {"inputs": []}
    inputs = [t for t in stored["inputs"] if t["model"] not in args.models]
    seconds = stored.get("seconds", {})
    for name in args.models:
        started = time.time()
        model = load(name)
        estimates = screen(name, model)
        for index in pick(estimates, TARGETS):
            inputs.append(truth(name, model, index, estimates[index]))
            print(json.dumps(inputs[-1]), f"{time.time() - started:.0f} s", flush=True)
            seconds[name] = round(time.time() - started)
            result = truths_document(
                "benchmarks.noise_real_scale.models:load(name)",
                "robustness_checks.demo.colour_digits:colour_test_set()",
                seconds,
                inputs,
                sigma=SIGMA,
                sampler="benchmarks.noise_real_scale.sampler (exact, drawn after the stem)",
            )
            args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
