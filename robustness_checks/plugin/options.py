"""Command-line options of the plugin."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustness", "robustness checks of PyTorch classifiers")
    group.addoption(
        "--robustness-json",
        metavar="PATH",
        default=None,
        help="write every check's result to a JSON file (schema_version 1)",
    )
    group.addoption(
        "--robustness-html",
        metavar="PATH",
        default=None,
        help="write a self-contained HTML report (plots inline, no network needed)",
    )
    group.addoption(
        "--robustness-save",
        metavar="NAME",
        default=None,
        help="store this run's results as baseline NAME under --robustness-storage",
    )
    group.addoption(
        "--robustness-save-partial",
        action="store_true",
        default=False,
        help="save the baseline even when the run was interrupted (its JSON says complete: false)",
    )
    group.addoption(
        "--robustness-compare",
        metavar="NAME|PATH",
        nargs="?",
        const="",
        default=None,
        help="compare with a saved baseline (default: the newest saved)",
    )
    group.addoption(
        "--robustness-compare-fail",
        metavar="EXPR",
        action="append",
        default=[],
        help="fail a check that regressed: ece:+0.01, adversarial:+2%%, noise:x2 (by metric, "
        "check name, type or *); repeatable",
    )
    group.addoption(
        "--robustness-compare-strict",
        action="store_true",
        default=False,
        help="fail a check whose settings (attack, eps, steps, estimator, ...) differ from the "
        "baseline's, instead of warning and not gating it",
    )
    group.addoption(
        "--robustness-benchmark",
        action="store_true",
        default=False,
        help="record every spec check as a pytest-benchmark benchmark too (group: spec file, "
        "name: check; automatic with --benchmark-autosave, -save, -compare or -json)",
    )
    group.addoption(
        "--robustness-rounds",
        metavar="N",
        type=int,
        default=1,
        help="run every check N times and keep the fastest wall time (for seconds:xF gates)",
    )
    group.addoption(
        "--robustness-storage",
        metavar="DIR",
        default=".robustness",
        help="folder of saved baselines, relative to the rootdir (default .robustness)",
    )
    group.addoption(
        "--robustness-device",
        metavar="DEVICE",
        default=None,
        help="run every spec on this device (auto, cpu, cuda, cuda:N, mps)",
    )
    group.addoption(
        "--robustness-decision",
        choices=("point", "strict", "lenient"),
        default=None,
        help="decision rule of every check, overriding spec and check: point (the estimate), "
        "strict (pass only when the bound holds with the check's confidence) or lenient (fail "
        "only when it is violated with that confidence); see docs/decisions.md",
    )
    parser.addini(
        "robustness_decision",
        "default decision rule where neither spec nor check gives one (point, strict, lenient)",
        default="point",
    )
    group.addoption(
        "--robustness-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="time limit of every check, overriding spec and check (an error past it)",
    )
    group.addoption(
        "--robustness-seed",
        metavar="SEED",
        type=int,
        default=None,
        help="override the seed of every spec",
    )
