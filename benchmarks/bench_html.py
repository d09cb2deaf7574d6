"""HTML report against JSON report: writing 500 results of a real run, replicated."""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

CHECKS = int(os.environ.get("BENCH_HTML_CHECKS", "500"))
ROUNDS = int(os.environ.get("BENCH_HTML_ROUNDS", "3"))
# A results JSON to replicate instead of the built-in run (e.g. `pytest specs/
# --robustness-json=r.json`).
SOURCE = os.environ.get("BENCH_HTML_JSON")
SPEC = "bench.robustness.yaml"
OOD = {"factory": "robustness_checks.demo.digits:noise_images", "kwargs": {"count": 100}}
# One check of every built-in type on the demo digits CNN, some failing so that the report
# draws failing examples (with saliency), histograms and a confusion matrix.
RUN: list[dict[str, Any]] = [
    {"type": "calibration", "name": "ece", "max": 0.05},
    {"type": "calibration", "name": "ace", "metric": "ace", "max": 0.05},
    {
        "type": "adversarial",
        "name": "pgd",
        "attack": {"method": "pgd", "eps": [0.02, 0.05, 0.1], "steps": 5},
        "max_drop": 0.05,
        "gradient_masking": "warn",
    },
    {"type": "adversarial", "name": "fgsm", "attack": {"method": "fgsm", "eps": 0.1}},
    {"type": "ood", "name": "ood", "ood_data": OOD, "score": "energy", "min": 0.9},
    {"type": "selective", "name": "abstain", "coverage": 0.8, "min_accuracy": 0.95},
    {"type": "failure_prediction", "name": "errors", "min": 0.2},
    {
        "type": "entropy_trend",
        "name": "trend",
        "attack": {"method": "fgsm"},
        "eps": [0.0, 0.05, 0.1],
        "uncertainty": {"method": "mc_dropout", "samples": 5},
    },
    {
        "type": "noise",
        "name": "noise",
        "sigma": 0.2,
        "indices": [222],
        "max_evaluations": 20_000,
        "max_probability": 1e-3,
    },
    {
        "type": "fuzz",
        "name": "fuzz",
        "perturbations": [{"kind": "brightness", "max": 0.5}, {"kind": "linf", "eps": 0.1}],
        "inputs": 8,
        "max_examples": 30,
        "database": False,
    },
]


def real_run() -> dict[str, Any]:
    """A results document of the checks above, run through the library."""
    from robustness_checks.api import run_check
    from robustness_checks.demo.digits import noise_images, test_set
    from robustness_checks.demo.model import digits_cnn
    from robustness_checks.reporting.json_report import results_document

    model, data = digits_cnn(pretrained=True), test_set()
    records = []
    for check in RUN:
        params = {k: v for k, v in check.items() if k not in ("type", "name")}
        if "ood_data" in params:
            params["ood_data"] = noise_images(**params["ood_data"]["kwargs"])
        result = run_check(check["type"], model, data, name=check["name"], device="cpu", **params)
        record = result.to_dict()
        record.update(
            nodeid=f"bench.robustness.yaml::{check['name']}", spec="bench.robustness.yaml"
        )
        records.append(record)
    return results_document(records, ["cpu"])


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The run's document with its results replicated to CHECKS records."""
    source = json.loads(Path(SOURCE).read_text()) if SOURCE else real_run()
    base = source["results"]
    results = []
    for i in range(CHECKS):
        record = copy.deepcopy(base[i % len(base)])
        record["nodeid"] = f"{record['nodeid']}-{i}"
        record["check"] = f"{record['check']}-{i}"
        results.append(record)
    return {**source, "results": results}


def test_html_against_json(benchmark: Any, document: dict[str, Any], tmp_path: Path) -> None:
    from robustness_checks.reporting.html_report import render_html, write_html
    from robustness_checks.reporting.json_report import write_results_json

    render_html({**document, "results": document["results"][:20]})  # imports, registry
    json_seconds: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        write_results_json(tmp_path / "r.json", document)
        json_seconds.append(time.perf_counter() - start)
        return (tmp_path / "r.html", document), {}

    benchmark.pedantic(write_html, setup=setup, rounds=ROUNDS, iterations=1)
    html_seconds = benchmark.stats.stats.data
    paired = statistics.median(h / j for h, j in zip(html_seconds, json_seconds, strict=True))
    info = {
        "checks": len(document["results"]),
        "html_min_s": min(html_seconds),
        "json_min_s": min(json_seconds),
        "ratio_min_min": min(html_seconds) / min(json_seconds),
        "ratio_paired_median": paired,
        "html_mb": (tmp_path / "r.html").stat().st_size / 1e6,
        "json_mb": (tmp_path / "r.json").stat().st_size / 1e6,
    }
    benchmark.extra_info.update(info)
    print(
        f"\n{info['checks']} checks: HTML {info['html_min_s']:.2f} s ({info['html_mb']:.1f} MB), "
        f"JSON {info['json_min_s']:.3f} s ({info['json_mb']:.1f} MB); HTML / JSON "
        f"{info['ratio_min_min']:.1f} (min/min), {paired:.1f} (paired median)"
    )
