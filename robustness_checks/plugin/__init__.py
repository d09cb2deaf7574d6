"""The pytest plugin (entry point `robustness_checks`): a thin adapter over the library."""

from robustness_checks.plugin.benchmark import pytest_collection_modifyitems
from robustness_checks.plugin.collect import pytest_collect_file
from robustness_checks.plugin.fixture import robustness
from robustness_checks.plugin.hooks import (
    pytest_collection_finish,
    pytest_configure,
    pytest_report_teststatus,
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_runtestloop,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
    pytest_unconfigure,
)
from robustness_checks.plugin.options import pytest_addoption

__all__ = [
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_collection_finish",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_teststatus",
    "pytest_runtest_logreport",
    "pytest_runtest_makereport",
    "pytest_runtestloop",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
    "pytest_unconfigure",
    "robustness",
]
