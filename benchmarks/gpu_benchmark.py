"""Examples per second on a CUDA device for PGD, auto (fast), the noise check and calibration on
a CIFAR-shaped ResNet-18, against the forward/backward floor on the same device.

For batch sizes 256, 512 and 1,024 and three numerics (fp32; fp32 with channels_last; bf16
autocast with channels_last) it times, after a warm-up:

- `floor_forward` and `floor_forward_backward`: the model alone (examples per second);
- `pgd`: `run_attack(method="pgd", steps=10)` on one batch; `pgd_vs_floor` is its examples per
  second times its 11 forward/backward passes per example over the floor (1.0 = no overhead);
- `auto_fast`: `run_attack(method="auto", version="fast")` on one batch (examples per second);
- `noise`: Monte Carlo draws per second of `estimate_failure_probability(estimator="mc")` with
  the batch size as its draw batch, over the forward floor;
- `calibration`: `robustness_checks.calibration` on 4 batches (examples per second) over the
  forward floor;

and GPU utilisation (torch.cuda.utilization, from NVML) sampled during each. Weights are random
(the figures are about speed; labels are the model's own predictions so attacks have work to
do). Figures go to a JSON file (default benchmarks/gpu_results.json).

    make bench-gpu                                        # on a machine with CUDA
    .venv/bin/python benchmarks/gpu_benchmark.py --dry-run --out /tmp/gpu.json   # CPU, tiny

`--dry-run` runs every measurement on the CPU with batch 8, 2 PGD steps and a tiny CNN in place
of the ResNet, so the test suite exercises the script (tests/test_gpu_benchmark.py) in seconds
where no GPU is lent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet18

import robustness_checks
from robustness_checks.attacks import run_attack
from robustness_checks.execution.context import Counted, EvaluationCounter
from robustness_checks.failure_probability import estimate_failure_probability

VARIANTS = {
    "fp32": {"precision": "fp32", "channels_last": False},
    "fp32_channels_last": {"precision": "fp32", "channels_last": True},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
}


def cifar_resnet18() -> nn.Module:
    """ResNet-18 for 3x32x32 inputs: a 3x3 stride-1 stem and no max-pool, 10 classes."""
    model = resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model.eval()


def tiny_cnn() -> nn.Module:
    """A two-layer CNN for 3x32x32 inputs: the dry run's stand-in, so it takes seconds."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, 10),
    ).eval()


class Utilisation:
    """GPU utilisation sampled every 50 ms while the block runs (None without NVML)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.samples = device, []
        self.stop = threading.Event()

    def _sample(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append(float(torch.cuda.utilization(self.device)))
            time.sleep(0.05)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        if self.device.type != "cuda":
            yield
            return
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.stop.set()
            thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def timed(device: torch.device, run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Seconds per call of `run` (after one warm-up call), and GPU utilisation."""
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    gauge = Utilisation(device)
    with gauge.watching():
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / repeats
    return seconds, gauge.mean


def measure(
    device: torch.device,
    batch: int,
    variant: dict[str, Any],
    steps: int,
    repeats: int,
    build: Callable[[], nn.Module] = cifar_resnet18,
) -> dict[str, Any]:
    """Every figure for one batch size and numerics variant."""
    model = build().to(device)
    if variant["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    counted = Counted(
        model,
        EvaluationCounter(),
        precision=variant["precision"],
        channels_last=variant["channels_last"],
    )
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, device=device, generator=generator)
    with torch.no_grad():
        y = counted(x).argmax(dim=1)
    row: dict[str, Any] = {"batch": batch, **variant}

    def forward() -> None:
        with torch.no_grad():
            counted(x)

    def forward_backward() -> None:
        leaf = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(counted(leaf).sum(), leaf)
        del grad

    seconds, busy = timed(device, forward, repeats)
    row["floor_forward"], row["floor_forward_util"] = batch / seconds, busy
    seconds, busy = timed(device, forward_backward, repeats)
    row["floor_forward_backward"], row["floor_forward_backward_util"] = batch / seconds, busy

    def pgd() -> None:
        run_attack(counted, x, y, method="pgd", eps=8 / 255, steps=steps)

    seconds, busy = timed(device, pgd, repeats)
    row["pgd"], row["pgd_util"] = batch / seconds, busy
    row["pgd_vs_floor"] = row["pgd"] * (steps + 1) / row["floor_forward_backward"]

    def auto() -> None:
        run_attack(counted, x, y, method="auto", version="fast", eps=8 / 255)

    seconds, busy = timed(device, auto, 1)
    row["auto_fast"], row["auto_fast_util"] = batch / seconds, busy

    draws = 4 * batch

    def noise() -> None:
        estimate_failure_probability(
            counted,
            x[0],
            int(y[0]),
            sigma=0.5,
            estimator="mc",
            relative_error=1e-9,  # never reached: exactly `draws` draws
            max_evaluations=draws,
            batch_size=batch,
        )

    seconds, busy = timed(device, noise, repeats)
    row["noise_draws"], row["noise_util"] = draws / seconds, busy
    row["noise_vs_floor"] = row["noise_draws"] / row["floor_forward"]

    data = (torch.rand(4 * batch, 3, 32, 32), torch.randint(0, 10, (4 * batch,)))

    def calibration() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            robustness_checks.calibration(
                model,
                data,
                device=device,
                batch_size=batch,
                bootstrap=10,
                precision=variant["precision"],
                channels_last=variant["channels_last"],
            )

    seconds, busy = timed(device, calibration, 1)
    row["calibration"], row["calibration_util"] = 4 * batch / seconds, busy
    row["calibration_vs_floor"] = row["calibration"] / row["floor_forward"]
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, batch 8, a few steps")
    parser.add_argument("--out", default=str(Path(__file__).with_name("gpu_results.json")))
    args = parser.parse_args(argv)
    build: Callable[[], nn.Module] = cifar_resnet18
    if args.dry_run:
        device, batches, steps, repeats, build = torch.device("cpu"), [8], 2, 1, tiny_cnn
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --dry-run for the CPU check")
        device, batches, steps, repeats = torch.device("cuda"), [256, 512, 1024], 10, 5
    rows = []
    for batch in batches:
        for name, variant in VARIANTS.items():
            row = measure(device, batch, variant, steps, repeats, build)
            rows.append({"variant": name, **row})
            print(
                f"{name:>20} batch {batch:>5}: floor f/b {row['floor_forward_backward']:,.0f}/s, "
                f"pgd {row['pgd']:,.0f}/s ({row['pgd_vs_floor']:.2f} of floor), auto fast "
                f"{row['auto_fast']:,.0f}/s, noise {row['noise_vs_floor']:.2f} of floor, "
                f"calibration {row['calibration_vs_floor']:.2f} of floor",
                flush=True,
            )
    document = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dry_run": args.dry_run,
        "pgd_steps": steps,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(document, indent=2))
    print(f"wrote {args.out}")
    return document


if __name__ == "__main__":
    main()
