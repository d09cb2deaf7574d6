"""`auto` standard against the full cascade and torchattacks' AutoAttack, on digits and
CIFAR-shaped models: robust accuracy and forward passes.

    PYTHONPATH=. .venv/bin/python benchmarks/auto_real_scale.py [--models NAME ...]

Per model (L-inf, seed 0, inputs in [0, 1]): ours `standard` (APGD-CE, APGD-T on MALT's 3
nearest targets, Square that retires rows making no progress), ours `full` (9 targets by clean
logit, 5000 Square queries for every row), torchattacks' AutoAttack as users call it (APGD,
APGD-T and FAB-T at its default 10 steps, Square 5000) and the same four torchattacks attacks at
the original 100 steps. The reference is the full cascade's worst case: an example counts as
robust only if every one of the other three runs left it robust. Forward passes are counted by
one wrapper around the model for every runner (gradient passes included; backward passes are
not forward passes). Writes benchmarks/auto_real_scale.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.bench_autoattack import Counting
from robustness_checks.attacks import run_attack

OUTPUT = Path(__file__).resolve().parent / "auto_real_scale.json"
Runner = Callable[[nn.Module, Tensor, Tensor, float], Tensor]  # adversarial points


def _digits(name: str) -> tuple[nn.Module, Tensor, Tensor, float]:
    from robustness_checks.demo.digits import test_set
    from robustness_checks.demo.model import digits_cnn, digits_cnn_adversarial

    x, y = test_set(200)
    model = digits_cnn(pretrained=True) if name == "digits_cnn" else digits_cnn_adversarial()
    return model, x, y, 0.2


def _colour(name: str) -> tuple[nn.Module, Tensor, Tensor, float]:
    from benchmarks.noise_real_scale.models import load
    from robustness_checks.demo.colour_digits import colour_resnet, colour_test_set, colour_vgg

    x, y = colour_test_set(400)
    models = {"colour_vgg": colour_vgg, "colour_resnet": colour_resnet}
    model = models[name]() if name in models else load(name)
    return model, x, y, 8 / 255


MODELS = {
    "digits_cnn": _digits,
    "digits_cnn_adversarial": _digits,
    "patch_cnn": _colour,
    "patch_mixer": _colour,
    "colour_vgg": _colour,
}
DEVELOPMENT = ("digits_cnn_adversarial",)  # standard's targets and retirement were set here


def ours(version: str) -> Runner:
    """`run_attack(method="auto", version=version)`, seeded with 0."""

    def run(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
        generator = torch.Generator().manual_seed(0)
        options = {"method": "auto", "version": version, "eps": eps, "generator": generator}
        return run_attack(model, x, y, **options).adversarial[0]

    return run


def torchattacks_called(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
    import torchattacks

    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, n_classes=10, seed=0)
    return attack(x, y)


def torchattacks_100(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
    import torchattacks

    common = {"norm": "Linf", "eps": eps, "seed": 0, "n_restarts": 1}
    attack = torchattacks.MultiAttack(
        [
            torchattacks.APGD(model, loss="ce", steps=100, **common),
            torchattacks.APGDT(model, n_classes=10, steps=100, **common),
            torchattacks.FAB(model, multi_targeted=True, n_classes=10, steps=100, **common),
            torchattacks.Square(model, n_queries=5000, **common),
        ]
    )
    return attack(x, y)


RUNNERS: dict[str, Runner] = {
    "ours standard": ours("standard"),
    "ours full": ours("full"),
    "torchattacks AutoAttack (as called)": torchattacks_called,
    "torchattacks, 100 steps": torchattacks_100,
}


def robust(model: nn.Module, x: Tensor, y: Tensor, adversarial: Tensor, eps: float) -> Tensor:
    """Per example: correct on the clean input and at the (checked) adversarial point."""
    adversarial = adversarial.detach()
    assert float((adversarial - x).abs().amax()) <= eps + 1e-5
    with torch.no_grad():
        return (model(x).argmax(1) == y) & (model(adversarial).argmax(1) == y)


def measure(name: str, stored: dict | None, only: list[str] | None) -> dict:
    """Every runner on model `name` (with `only`, those runners; the others' robust examples
    and counts come from `stored`)."""
    model, x, y, eps = MODELS[name](name)
    model.eval()
    rows, masks = {}, {}
    for runner, attack in RUNNERS.items():
        if only and runner not in only and stored:
            rows[runner] = stored["runners"][runner]
            masks[runner] = torch.zeros(len(y), dtype=torch.bool)
            masks[runner][rows[runner]["robust_examples"]] = True
            continue
        counting = Counting(model).eval()
        started = time.perf_counter()
        adversarial = attack(counting, x, y, eps)
        seconds = time.perf_counter() - started
        masks[runner] = robust(model, x, y, adversarial, eps)
        rows[runner] = {
            "robust": int(masks[runner].sum()),
            "robust_examples": masks[runner].nonzero().flatten().tolist(),
            "forward_passes": counting.forward_passes,
            "seconds": round(seconds, 1),
        }
        shown = {k: v for k, v in rows[runner].items() if k != "robust_examples"}
        print(f"{name}: {runner}: {shown}", flush=True)
    reference = masks["ours full"]
    for runner in list(RUNNERS)[2:]:
        reference = reference & masks[runner]
    standard = masks["ours standard"]
    n = len(y)
    return {
        "model": name,
        "examples": n,
        "eps": eps,
        "development": name in DEVELOPMENT,
        "runners": rows,
        "worst_case_robust": int(reference.sum()),
        "standard_above_worst_case_points": 100 * (int(standard.sum()) - int(reference.sum())) / n,
        "standard_missed": (standard & ~reference).nonzero().flatten().tolist(),
        "standard_over_torchattacks_called": rows["ours standard"]["forward_passes"]
        / rows["torchattacks AutoAttack (as called)"]["forward_passes"],
        "standard_over_torchattacks_100": rows["ours standard"]["forward_passes"]
        / rows["torchattacks, 100 steps"]["forward_passes"],
    }


def table(records: list[dict]) -> str:
    lines = [
        "| model | examples, eps | runner | robust acc | forward passes | seconds |",
        "|---|---|---|---:|---:|---:|",
    ]
    for record in records:
        n = record["examples"]
        first = f"{record['model']}{' (development)' if record['development'] else ''}"
        for runner, row in record["runners"].items():
            lines.append(
                f"| {first} | {n}, {record['eps']:.4g} | {runner} | {row['robust'] / n:.4f} | "
                f"{row['forward_passes']:,} | {row['seconds']:.0f} |"
            )
            first = ""
        lines.append(
            f"| | | full cascade's worst case | {record['worst_case_robust'] / n:.4f} | | |"
        )
    lines.append("")
    lines.append(
        "| model | standard above worst case (points) | standard / torchattacks as called | "
        "standard / torchattacks 100 steps |"
    )
    lines.append("|---|---:|---:|---:|")
    for record in records:
        lines.append(
            f"| {record['model']} | {record['standard_above_worst_case_points']:.2f} | "
            f"{record['standard_over_torchattacks_called']:.3f} | "
            f"{record['standard_over_torchattacks_100']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=OUTPUT)
    parser.add_argument("--runners", nargs="*", help="rerun only these (the rest from --out)")
    parser.add_argument("--load", action="store_true", help="print the stored table, run nothing")
    args = parser.parse_args()
    if args.load:
        print(table(json.loads(args.out.read_text())))
        return
    torch.set_num_threads(1)
    stored = {r["model"]: r for r in json.loads(args.out.read_text())} if args.out.is_file() else {}
    for name in args.models:
        stored[name] = measure(name, stored.get(name), args.runners)
        args.out.write_text(json.dumps(list(stored.values()), indent=1) + "\n")
    print(table([stored[name] for name in MODELS if name in stored]))


if __name__ == "__main__":
    main()
