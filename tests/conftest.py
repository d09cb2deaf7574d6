"""Shared test set-up."""

import os
from collections.abc import Iterator

import pytest
import torch

# pytester's in-process runs remove modules first imported during a run; torch cannot be
# imported twice in one process, so the heavy modules are imported once here, before any run.
import torchvision  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker runs torch on one thread: two workers on two cores with
    two threads each would fight over the cores (the suite took 1.5x as long)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test: attack timings and float sums do not depend on how
    busy the machine is (and two xdist workers do not fight over two cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_SCHEMA_VIOLATIONS: list[str] = []


@pytest.fixture(autouse=True, scope="session")
def _reports_are_checked_against_the_schema() -> Iterator[None]:
    """Every results file and baseline the tests write (in-process runs included) is validated
    against `python -m robustness_checks schema --results`; a violation fails the test."""
    import json

    import jsonschema

    from robustness_checks.gating import baseline
    from robustness_checks.reporting import json_report
    from robustness_checks.reporting.results_schema import results_json_schema

    validator = jsonschema.Draft202012Validator(results_json_schema())
    write_json, save = json_report.write_results_json, baseline.save_baseline

    def check(document: dict, where: object) -> None:
        plain = json.loads(json.dumps(document, allow_nan=False))
        for error in validator.iter_errors(plain):
            path = "/".join(map(str, error.absolute_path))
            _SCHEMA_VIOLATIONS.append(f"{where}: {path}: {error.message[:300]}")

    def checked_json(path, document):  # type: ignore[no-untyped-def]
        check(document, path)
        return write_json(path, document)

    def checked_save(storage, name, document):  # type: ignore[no-untyped-def]
        check({**document, "baseline": name}, f"baseline {name}")
        return save(storage, name, document)

    json_report.write_results_json = checked_json
    baseline.save_baseline = checked_save
    yield
    json_report.write_results_json, baseline.save_baseline = write_json, save


@pytest.fixture(autouse=True)
def _no_schema_violations() -> Iterator[None]:
    _SCHEMA_VIOLATIONS.clear()
    yield
    found, _SCHEMA_VIOLATIONS[:] = list(_SCHEMA_VIOLATIONS), []
    assert not found, "reports that do not match the results schema:\n" + "\n".join(found[:5])


@pytest.fixture(scope="module")
def registry_with_examples() -> Iterator[dict]:
    """The check type registry with the docs' example packages installed into it (as pip would),
    for the validity harnesses; the registry as before afterwards."""
    from robustness_checks.checks.registry import CHECK_TYPES
    from robustness_checks.validity.packages import example_packages, installed

    with installed(example_packages()):
        yield dict(CHECK_TYPES)
