"""Plugin overhead: 100 spec checks collected and run by pytest, against direct library calls."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

# Rounds of collection and of end-to-end runs (each round starts fresh interpreters);
# BENCH_OVERHEAD_ROUNDS overrides both.
COLLECT_ROUNDS = int(os.environ.get("BENCH_OVERHEAD_ROUNDS", "2"))
RUN_ROUNDS = int(os.environ.get("BENCH_OVERHEAD_ROUNDS", "2"))
# layout: (spec files, checks per file), 100 checks in all.
LAYOUTS = {"10x10": (10, 10), "100x1": (100, 1)}
OOD_DATA = {"factory": "robustness_checks.demo.digits:noise_images", "kwargs": {"count": 200}}
# Ten cheap checks on the demo digits CNN (540 test digits): 0.02 to 0.3 s each.
CHECKS: list[dict[str, Any]] = [
    {"name": "ece", "type": "calibration", "metric": "ece", "max": 0.05},
    {"name": "ace", "type": "calibration", "metric": "ace", "max": 0.05},
    {"name": "brier", "type": "calibration", "metric": "brier", "max": 0.1},
    {"name": "nll", "type": "calibration", "metric": "nll", "max": 0.2},
    {
        "name": "fgsm",
        "type": "adversarial",
        "attack": {"method": "fgsm", "norm": "inf", "eps": 0.1},
        "max_drop": 0.5,
    },
    {
        "name": "uniform",
        "type": "adversarial",
        "attack": {"method": "uniform", "norm": "inf", "eps": 0.1},
        "max_drop": 0.05,
    },
    {"name": "abstain", "type": "selective", "coverage": 0.8, "min_accuracy": 0.95},
    {"name": "errors", "type": "failure_prediction", "min": 0.2},
    {"name": "ood-msp", "type": "ood", "ood_data": OOD_DATA, "score": "msp", "min": 0.8},
    {
        "name": "ood-energy",
        "type": "ood",
        "ood_data": OOD_DATA,
        "score": "energy",
        "metric": "fpr95",
        "max": 0.5,
    },
]

# A pytest plugin (loaded with -p) that writes when pytest reached each stage.
TIMING_PLUGIN = """
import json, os, time

MARKS = {"imported": time.time()}


def pytest_sessionstart(session):
    MARKS["session_start"] = time.time()


def pytest_collection_finish(session):
    MARKS["collected"] = time.time()


def pytest_runtest_call(item):
    MARKS.setdefault("first_call", time.time())


def pytest_runtest_logreport(report):
    if report.when == "call":
        MARKS.setdefault("first_result", time.time())


def pytest_unconfigure(config):
    MARKS["done"] = time.time()
    with open(os.environ["RC_BENCH_MARKS"], "w") as file:
        json.dump(MARKS, file)
"""

# The same checks called from Python: the model and data loaded once per spec, as the plugin does.
DIRECT_SCRIPT = """
import json, os, sys, time

import torch
from robustness_checks import run_check
from robustness_checks.demo.digits import noise_images, test_set
from robustness_checks.demo.model import digits_cnn

marks = {"imported": time.time()}
values = {}
for spec in json.load(open(sys.argv[1])):
    model, data = digits_cnn(pretrained=True), test_set()
    ood_x, _ = noise_images(count=200)
    marks.setdefault("loaded", time.time())
    for check in spec["checks"]:
        params = dict(check)
        kind, name = params.pop("type"), params.pop("name")
        if "ood_data" in params:
            params["ood_data"] = ood_x
        result = run_check(kind, model, data, name=name, device="cpu", seed=0, **params)
        marks.setdefault("first_result", time.time())
        values[spec["file"] + "::" + name] = [result.value, result.seconds]
marks["done"] = time.time()
with open(os.environ["RC_BENCH_MARKS"], "w") as file:
    json.dump(marks, file)
json.dump(values, open(sys.argv[2], "w"))
"""

# The library's own validation of the same specs (what any spec-reading tool has to pay).
PARSE_SCRIPT = """
import sys
from pathlib import Path
from robustness_checks import load_spec

for path in sorted(Path(sys.argv[1]).glob("*.robustness.yaml")):
    load_spec(path)
"""


@dataclass
class Folder:
    """A temporary project: specs/ with 100 checks, an empty folder, and the helper scripts."""

    root: Path
    layout: str
    specs: int

    @property
    def marks(self) -> Path:
        return self.root / "marks.json"


@dataclass
class Run:
    """One fresh process: wall seconds, and its stage marks in seconds after launch."""

    wall: float
    marks: dict[str, float] = field(default_factory=dict)


def spec_document(checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": {
            "factory": "robustness_checks.demo.model:digits_cnn",
            "kwargs": {"pretrained": True},
        },
        "data": {"factory": "robustness_checks.demo.digits:test_set", "batch_size": 256},
        "bounds": [0.0, 1.0],
        "device": "cpu",
        "seed": 0,
        "confidence": 0.95,
        "checks": checks,
    }


def make_folder(root: Path, layout: str) -> Folder:
    """Write the specs, the check list for the direct script, and the helper files."""
    files, per_file = LAYOUTS[layout]
    (root / "specs").mkdir()
    (root / "empty").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "rc_bench_timing.py").write_text(TIMING_PLUGIN)
    (root / "direct_checks.py").write_text(DIRECT_SCRIPT)
    (root / "parse_specs.py").write_text(PARSE_SCRIPT)
    manifest = []
    for index in range(files):
        checks = [CHECKS[(index * per_file + k) % len(CHECKS)] for k in range(per_file)]
        name = f"spec_{index:03d}.robustness.yaml"
        text = yaml.safe_dump(spec_document(checks), sort_keys=False)
        (root / "specs" / name).write_text(text)
        manifest.append({"file": name, "checks": checks})
    (root / "checks.json").write_text(json.dumps(manifest))
    return Folder(root, layout, files)


def run_child(folder: Folder, args: list[str], ok: tuple[int, ...] = (0,)) -> Run:
    """Run `python args` in a fresh interpreter from the folder; time it and read its marks."""
    path = os.pathsep.join(filter(None, [str(folder.root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "RC_BENCH_MARKS": str(folder.marks)}
    env.setdefault("OMP_NUM_THREADS", "1")
    folder.marks.unlink(missing_ok=True)
    launch, start = time.time(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=folder.root, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode not in ok:
        raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    stamps = json.loads(folder.marks.read_text()) if folder.marks.exists() else {}
    return Run(wall, {key: value - launch for key, value in stamps.items()})


def pytest_collect(folder: Folder, target: str, *options: str) -> Run:
    # Exit status 5 is "no tests collected", the expected outcome for the empty folder.
    args = ["-m", "pytest", "--collect-only", "-q", "-p", "rc_bench_timing", *options, target]
    return run_child(folder, args, ok=(0, 5))


def library_parse(folder: Folder) -> Run:
    return run_child(folder, ["parse_specs.py", "specs"])


def pytest_run(folder: Folder, *options: str) -> Run:
    args = ["-m", "pytest", "-q", "-p", "rc_bench_timing", *options, "specs"]
    return run_child(folder, [*args, "--robustness-json=results.json"])


def direct_run(folder: Folder) -> Run:
    return run_child(folder, ["direct_checks.py", "checks.json", "direct.json"])


def paired_median(ours: list[float], base: list[float]) -> float:
    return statistics.median(o / b for o, b in zip(ours, base, strict=True))


def median_mark(runs: list[Run], key: str) -> float:
    return statistics.median(run.marks[key] for run in runs)


def write_lines(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Print past pytest's capture, so the figures show in the benchmark's output."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


def timed(
    benchmark: Any, rounds: int, ours: Callable[[], Run], baselines: list[Callable[[], Run]]
) -> tuple[list[Run], list[list[Run]]]:
    """Time `ours` `rounds` times, each right after one run of every baseline (same load)."""
    ours_runs: list[Run] = []
    base_runs: list[list[Run]] = [[] for _ in baselines]

    def setup() -> None:
        for runs, baseline in zip(base_runs, baselines, strict=True):
            runs.append(baseline())

    def target() -> None:
        ours_runs.append(ours())

    benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    return ours_runs, base_runs


@pytest.fixture(scope="module", params=list(LAYOUTS))
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Folder:
    made = make_folder(tmp_path_factory.mktemp(f"overhead-{request.param}"), request.param)
    # One untimed start, so every timed one finds the files in the page cache and .pyc written.
    library_parse(made)
    return made


def test_collection_overhead(
    benchmark: Any, request: pytest.FixtureRequest, folder: Folder
) -> None:
    benchmark.group = f"overhead-collect-{folder.layout}"
    collect, baselines = timed(
        benchmark,
        COLLECT_ROUNDS,
        lambda: pytest_collect(folder, "specs"),
        [
            lambda: library_parse(folder),
            lambda: pytest_collect(folder, "empty"),
            lambda: pytest_collect(folder, "empty", "-p", "no:robustness_checks"),
        ],
    )
    parse, empty, bare = ([run.wall for run in runs] for runs in baselines)
    walls = [run.wall for run in collect]
    info = {
        "library_parse_min_s": min(parse),
        "pytest_empty_min_s": min(empty),
        "pytest_empty_no_plugin_min_s": min(bare),
        "pytest_collect_min_s": min(walls),
        "ratio_min": min(walls) / min(parse),
        "ratio_paired_median": paired_median(walls, parse),
        "collect_minus_parse_paired_median_s": statistics.median(
            c - p for c, p in zip(walls, parse, strict=True)
        ),
        "plugin_import_paired_median_s": statistics.median(
            e - b for e, b in zip(empty, bare, strict=True)
        ),
        "pytest_to_session_start_s": median_mark(collect, "session_start"),
        "pytest_collection_s": median_mark(collect, "collected")
        - median_mark(collect, "session_start"),
    }
    benchmark.extra_info.update({"specs": folder.specs, "checks": 100, **info})
    write_lines(request, collection_lines(folder, info))


def collection_lines(folder: Folder, info: dict[str, float]) -> list[str]:
    return [
        f"collection, {folder.layout} ({folder.specs} spec files, 100 checks),"
        f" {COLLECT_ROUNDS} rounds, fresh interpreters, wall seconds:",
        f"  library parse (load_spec of every spec)       min {info['library_parse_min_s']:.2f}",
        f"  pytest --collect-only, the specs              min {info['pytest_collect_min_s']:.2f}",
        f"  pytest --collect-only, empty folder           min {info['pytest_empty_min_s']:.2f}",
        "  the same, -p no:robustness_checks             min"
        f" {info['pytest_empty_no_plugin_min_s']:.2f}",
        f"  collect / parse: min/min {info['ratio_min']:.2f},"
        f" paired median {info['ratio_paired_median']:.2f};"
        f" collect - parse, paired median {info['collect_minus_parse_paired_median_s']:.2f}",
        "  loading the plugin (empty folder with - without it), paired median"
        f" {info['plugin_import_paired_median_s']:.2f}",
        f"  pytest launch to sessionstart {info['pytest_to_session_start_s']:.2f},"
        f" sessionstart to collection finished {info['pytest_collection_s']:.2f} (medians)",
    ]


def same_values(folder: Folder) -> tuple[int, float, float]:
    """Check that pytest and the direct script measured the same numbers; sum their seconds."""
    direct = json.loads((folder.root / "direct.json").read_text())
    results = json.loads((folder.root / "results.json").read_text())["results"]
    assert len(results) == len(direct) == 100
    for record in results:
        value, _ = direct[f"{Path(record['spec']).name}::{record['check']}"]
        assert record["value"] == pytest.approx(value, rel=1e-9, abs=1e-12), record["nodeid"]
    ours = sum(record["seconds"] for record in results)
    return len(results), ours, sum(seconds for _, seconds in direct.values())


def run_row(name: str, runs: list[Run], direct: list[Run]) -> dict[str, float]:
    """Wall and start-to-first-result seconds of `runs`, and their ratios to the direct runs."""
    walls, direct_walls = [r.wall for r in runs], [r.wall for r in direct]
    first = [r.marks["first_result"] for r in runs]
    first_direct = [r.marks["first_result"] for r in direct]
    return {
        f"{name}_min_s": min(walls),
        f"{name}_ratio_min": min(walls) / min(direct_walls),
        f"{name}_ratio_paired_median": paired_median(walls, direct_walls),
        f"{name}_first_result_min_s": min(first),
        f"{name}_first_result_ratio_paired_median": paired_median(first, first_direct),
    }


# End to end only for the 10 x 10 layout, which keeps the benchmark short.
@pytest.mark.parametrize("folder", ["10x10"], indirect=True)
def test_end_to_end_overhead(
    benchmark: Any, request: pytest.FixtureRequest, folder: Folder
) -> None:
    benchmark.group = f"overhead-run-{folder.layout}"
    runs, (direct, no_html) = timed(
        benchmark,
        RUN_ROUNDS,
        lambda: pytest_run(folder),
        [lambda: direct_run(folder), lambda: pytest_run(folder, "-p", "no:html")],
    )
    checked, check_seconds, direct_check_seconds = same_values(folder)
    info = {
        **run_row("direct", direct, direct),
        **run_row("pytest", runs, direct),
        **run_row("pytest_no_html", no_html, direct),
        "pytest_to_session_start_s": median_mark(runs, "session_start"),
        "pytest_to_collected_s": median_mark(runs, "collected"),
        "pytest_to_first_call_s": median_mark(runs, "first_call"),
        "direct_to_imported_s": median_mark(direct, "imported"),
        "check_seconds_pytest_last": check_seconds,
        "check_seconds_direct_last": direct_check_seconds,
    }
    benchmark.extra_info.update({"specs": folder.specs, "checks": checked, **info})
    write_lines(request, run_lines(folder, info))


RUN_ROWS = {
    "direct": "direct Python, run_check per check",
    "pytest": "pytest specs --robustness-json",
    "pytest_no_html": "the same, -p no:html",
}


def run_lines(folder: Folder, info: dict[str, float]) -> list[str]:
    lines = [
        f"end to end, {folder.layout} ({folder.specs} spec files, 100 checks),"
        f" {RUN_ROUNDS} rounds, fresh interpreters, wall seconds; ratios to direct Python"
        " (pytest's values equal the direct ones, checked):",
        f"  {'':<36} {'min s':>7} {'min/min':>8} {'paired':>7}"
        f" {'first result s':>15} {'paired':>7}",
    ]
    for key, label in RUN_ROWS.items():
        lines.append(
            f"  {label:<36} {info[f'{key}_min_s']:>7.2f} {info[f'{key}_ratio_min']:>8.2f}"
            f" {info[f'{key}_ratio_paired_median']:>7.2f}"
            f" {info[f'{key}_first_result_min_s']:>15.2f}"
            f" {info[f'{key}_first_result_ratio_paired_median']:>7.2f}"
        )
    lines += [
        "  pytest marks after launch (medians):"
        f" sessionstart {info['pytest_to_session_start_s']:.2f},"
        f" collection finished {info['pytest_to_collected_s']:.2f},"
        f" first check called {info['pytest_to_first_call_s']:.2f};"
        f" direct Python's imports done {info['direct_to_imported_s']:.2f}",
        f"  the checks' own seconds summed (last round): pytest "
        f"{info['check_seconds_pytest_last']:.2f}, direct {info['check_seconds_direct_last']:.2f}",
    ]
    return lines
