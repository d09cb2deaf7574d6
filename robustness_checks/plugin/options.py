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
        "--robustness-device",
        metavar="DEVICE",
        default=None,
        help="run every spec on this device (auto, cpu, cuda, cuda:N, mps)",
    )
    group.addoption(
        "--robustness-seed",
        metavar="SEED",
        type=int,
        default=None,
        help="override the seed of every spec",
    )
