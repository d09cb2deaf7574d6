"""Spec checks as pytest-benchmark benchmarks: group = spec file, name = check, cost as extras."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# pytest-benchmark options that save or compare benchmarks: with any of them spec checks are
# benchmarks too, as they are with --robustness-benchmark.
BENCHMARK_OPTIONS = ("benchmark_autosave", "benchmark_save", "benchmark_compare", "benchmark_json")


def benchmark_session(config: pytest.Config) -> Any | None:
    """pytest-benchmark's session when spec checks are to be recorded as benchmarks, else None
    (pytest-benchmark missing or `-p no:benchmark`, none of the options given, --benchmark-skip,
    which skips spec checks then)."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.skip:
        return None
    return session if _wanted(config) else None


def _wanted(config: pytest.Config) -> bool:
    """--robustness-benchmark, or a pytest-benchmark option that saves or compares, was given
    (and pytest-benchmark is active)."""
    return hasattr(config, "_benchmarksession") and bool(
        config.getoption("robustness_benchmark")
        or any(config.getoption(option, None) for option in BENCHMARK_OPTIONS)
    )


def require_benchmark_plugin(session: pytest.Session) -> None:
    """--robustness-benchmark without pytest-benchmark would record nothing: a usage error."""
    config = session.config
    if config.getoption("robustness_benchmark") and not hasattr(config, "_benchmarksession"):
        raise pytest.UsageError(
            "--robustness-benchmark needs the pytest-benchmark plugin: pip install "
            "pytest-benchmark (and do not disable it with -p no:benchmark)"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """While spec checks are benchmarks, pytest-benchmark treats them as its own: run with
    --benchmark-only, skipped with --benchmark-skip. It tells a benchmark by the fixture name."""
    if not _wanted(config):
        return
    for item in items:
        if hasattr(item, "check") and not hasattr(item, "fixturenames"):
            item.fixturenames = ["benchmark"]  # type: ignore[attr-defined]


def rounds_of(check: Any) -> int:
    """How often a check runs when benchmarked: `benchmark: {rounds: N}` in the spec, else 1."""
    settings = getattr(check, "benchmark", None)
    return settings.rounds if settings is not None else 1


def benchmarked(item: Any, run: Callable[[], T]) -> T:
    """`run()` (one run of the check `item` holds), timed as a pytest-benchmark benchmark when
    spec checks are benchmarks: `rounds` runs, the last one's result returned. Otherwise, or when
    pytest-benchmark is disabled (--benchmark-disable, under xdist), it runs once, untimed."""
    session = benchmark_session(item.config)
    if session is None:
        return run()
    from pytest_benchmark.fixture import BenchmarkFixture

    # As pytest-benchmark's `benchmark` fixture builds it: name = the check, fullname = its node
    # id (what --benchmark-compare matches on), group = the spec file.
    fixture = BenchmarkFixture(
        item,
        add_stats=session.benchmarks.append,
        logger=session.logger,
        warner=item.warn,
        disabled=session.disabled,
        group=item.nodeid.split("::", 1)[0],
        **session.options,
    )
    result = fixture.pedantic(run, rounds=rounds_of(item.check), iterations=1)
    fixture.extra_info.update(extra_info(result))
    return result


def extra_info(result: Any) -> dict[str, Any]:
    """What a benchmark of a check carries besides its timings (the last round's numbers)."""
    value = result.value if result.value is None or math.isfinite(result.value) else None
    seconds = result.seconds or 0.0
    return {
        "type": result.type,
        "metric": result.metric,
        "value": value,
        "outcome": result.outcome,
        "evaluations": result.evaluations,
        "examples": result.examples,
        "examples_per_second": result.examples / seconds if seconds > 0 else None,
        "evaluations_per_second": result.evaluations / seconds if seconds > 0 else None,
    }
