"""The run's outputs: checked before the first check runs, and written so that none is lost."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pytest


def output_problems(config: pytest.Config) -> list[str]:
    """Why any output path of this run cannot be written: the JSON and HTML reports, JUnit XML,
    the baseline storage and the save name. Empty when every one can."""
    from robustness_checks.gating.baseline import BaselineError, check_save_name
    from robustness_checks.reporting.atomic import writable_problem

    problems = []
    files = [
        ("--robustness-json", config.getoption("robustness_json")),
        ("--robustness-html", config.getoption("robustness_html")),
        ("--junitxml", getattr(config.option, "xmlpath", None)),
    ]
    for option, path in files:
        if path:
            problem = writable_problem(Path(path).expanduser())
            if problem:
                problems.append(f"{option} {path}: {problem}")
    save = config.getoption("robustness_save")
    if save:
        try:
            check_save_name(save)
        except BaselineError as error:
            problems.append(str(error))
        storage = Path(config.rootpath) / config.getoption("robustness_storage")
        problem = writable_problem(storage, folder=True)
        if problem:
            problems.append(f"--robustness-storage {storage} (for --robustness-save): {problem}")
    return problems


def write_outputs(config: pytest.Config, state: Any, *, complete: bool) -> bool:
    """Write the JSON and HTML reports and save the baseline, each on its own: one that fails
    is named in the summary and never stops the others. Returns whether any failed."""
    from robustness_checks.reporting.json_report import results_document

    document = results_document(state.sorted_results(), state.devices, state.specs)
    writers = [w for w in _writers(config, state, document, complete) if w[1]]
    if not writers:
        return False
    document["complete"] = complete
    if state.gate.active:
        document["baseline_comparison"] = state.gate.coverage(document["results"])
    json_path, html_path = config.getoption("robustness_json"), config.getoption("robustness_html")
    folder = Path(json_path or html_path).parent if json_path or html_path else state.gate.storage
    failed = False
    with _lock(folder):
        for what, wanted, write in writers:
            try:
                write()
            except Exception as error:
                failed = True
                where = traceback.extract_tb(error.__traceback__)[-1]
                state.notes.append(
                    f"error: the {what} ({wanted}) could not be written: "
                    f"{type(error).__name__}: {error} (at {Path(where.filename).name}:"
                    f"{where.lineno}); the other outputs were written"
                )
    return failed


def _lock(folder: Path) -> Any:
    """The report lock on `folder`, or no lock where the folder cannot hold one."""
    import contextlib

    from robustness_checks.reporting.atomic import report_lock

    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".robustness-reports.lock").touch()
    except OSError:
        return contextlib.nullcontext()
    return report_lock(folder)


def _writers(
    config: pytest.Config, state: Any, document: dict[str, Any], complete: bool
) -> list[tuple[str, Any, Any]]:
    """(what, wanted, write) for each output the options ask for."""
    json_path = config.getoption("robustness_json")
    html_path = config.getoption("robustness_html")
    save_name = config.getoption("robustness_save")
    return [
        ("JSON report", json_path, lambda: _write_json(json_path, document)),
        ("HTML report", html_path, lambda: _write_html(config, state, html_path, document)),
        ("baseline", save_name, lambda: _save(config, state, save_name, document, complete)),
    ]


def _write_json(path: str, document: dict[str, Any]) -> None:
    from robustness_checks.reporting.json_report import write_results_json

    write_results_json(path, document)


def _write_html(config: pytest.Config, state: Any, path: str, document: dict[str, Any]) -> None:
    from robustness_checks.gating.history import check_series, load_history
    from robustness_checks.reporting.html_report import write_html

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        count = len(document["results"])
        reporter.write_line(f"writing HTML report {path} ({count} checks) ...")
    storage = state.gate.storage
    history = check_series(load_history(storage)) if storage.is_dir() else {}
    write_html(path, document, history)


def _save(
    config: pytest.Config, state: Any, name: str, document: dict[str, Any], complete: bool
) -> None:
    from robustness_checks.gating.baseline import save_baseline

    if complete or config.getoption("robustness_save_partial"):
        save_baseline(state.gate.storage, name, document)
    else:
        state.notes.append(
            f"baseline {name!r} was not saved: the run was interrupted, so its results "
            "are partial (--robustness-save-partial saves them anyway, marked incomplete)"
        )
