"""The GPU benchmark's CPU dry run: every measurement runs and the JSON has every figure."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).parents[1] / "benchmarks" / "gpu_benchmark.py"
FIGURES = {
    "floor_forward",
    "floor_forward_backward",
    "pgd",
    "pgd_vs_floor",
    "auto_fast",
    "noise_draws",
    "noise_vs_floor",
    "calibration",
    "calibration_vs_floor",
}


def test_the_gpu_benchmark_dry_run_writes_every_figure(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "gpu.json"
    module.main(["--dry-run", "--out", str(out)])
    document = json.loads(out.read_text())
    assert document["dry_run"] is True and document["device"] == "cpu"
    assert [row["variant"] for row in document["rows"]] == list(module.VARIANTS)
    for row in document["rows"]:
        assert set(row) >= FIGURES and all(row[key] > 0 for key in FIGURES), row
