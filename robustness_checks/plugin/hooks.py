"""Session-level hooks: set-up, xdist hand-over, report writing and the terminal summary."""

from __future__ import annotations

from typing import Any

import pytest

from robustness_checks.execution.launch import launched_by_torchrun
from robustness_checks.plugin.fixture import REGRESSIONS
from robustness_checks.plugin.session import (
    RECORD_PROPERTY,
    WORKER_OUTPUT_KEY,
    RobustnessSession,
    get_session,
    session_key,
)
from robustness_checks.settings import reset_session_layers, set_session_layers

_SETTINGS_TOKEN = pytest.StashKey[Any]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    rank, size = 0, 1
    # torch is imported only under torchrun, so plain pytest runs stay light.
    if launched_by_torchrun() and not _is_worker(config):
        from robustness_checks.execution.distributed import init_from_environment

        world = init_from_environment()
        rank, size = world.rank, world.size
        if rank != 0:
            # Every process runs every check on its share of the examples and gets the same
            # results; only rank 0 writes reports. This runs before junitxml and pytest-html
            # configure themselves, so they see no output path on the other ranks.
            for option in ("xmlpath", "htmlpath"):
                if getattr(config.option, option, None):
                    setattr(config.option, option, None)
    state = config.stash[session_key] = RobustnessSession(config, rank, size)
    # Checks run from test functions follow the command line and the ini file too.
    config.stash[_SETTINGS_TOKEN] = set_session_layers(state.command_line, state.ini)
    _interrupt_on_sigterm()
    config.addinivalue_line("markers", "robustness: a check from a robustness spec file")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "robustness_checks_xdist")


class _XdistHooks:
    """Registered only when pytest-xdist is installed, since its hook needs xdist's spec."""

    checked_keys = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not hasattr(report, "node"):  # only the controller receives workers' reports
            return
        state = get_session(report.node.config)
        kept = []
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                state.merge_record(value)
            else:
                kept.append((name, value))
        report.user_properties[:] = kept
        text = str(getattr(report, "longrepr", "") or "")
        if report.failed and "crashed while running" in text:
            state.record_crash(report.nodeid, text.strip().splitlines()[-1])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The rule keys against what the first worker collected (every worker collects the
        same items); a usage error ends the run with exit code 4."""
        if self.checked_keys:
            return
        self.checked_keys = True
        from robustness_checks.plugin.collect import checks_of

        try:
            get_session(node.config).gate.check_rule_keys_of(checks_of(node.config, ids))
        except pytest.UsageError as error:
            pytest.exit(f"ERROR: {error}", returncode=pytest.ExitCode.USAGE_ERROR)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if output:
            get_session(node.config).merge_worker_output(output)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Every output path is checked before the first check runs: a usage error (exit 4) naming
    the path and why, instead of a run whose reports are lost at its end."""
    from robustness_checks.plugin.benchmark import require_benchmark_plugin

    require_benchmark_plugin(session)
    config = session.config
    if _is_worker(config) or get_session(config).rank != 0:
        return
    from robustness_checks.plugin.outputs import output_problems

    problems = output_problems(config)
    if problems:
        raise pytest.UsageError("; ".join(problems))


def pytest_collection_finish(session: pytest.Session) -> None:
    """A --robustness-compare-fail rule that matches no check of the run is a usage error (under
    xdist the controller checks it, from the node ids the workers collected)."""
    if not _is_worker(session.config):
        get_session(session.config).gate.check_rule_keys(session.items)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session):  # type: ignore[no-untyped-def]
    """A bad spec fails its own collection but, unlike other collection errors, does not stop
    the other specs from running (DESIGN.md); the exit status still counts it."""
    spec_errors = get_session(session.config).spec_errors
    session.testsfailed -= spec_errors
    try:
        return (yield)
    finally:
        session.testsfailed += spec_errors


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A test whose recorded results regressed against the baseline fails; a check that could
    not measure is an error; with pytest-html active, a check's row carries its plot."""
    report = yield
    regressions = item.stash.get(REGRESSIONS, None)
    if call.when == "call" and regressions and report.passed:
        # Results a test recorded with the `robustness` fixture regressed against the baseline.
        report.outcome = "failed"
        report.longrepr = "\n".join(regressions)
    result = getattr(item, "result", None)
    if call.when == "call" and result is not None and result.outcome == "error":
        # A check that could not measure is an error, not a failure of its bound: JUnit writes
        # it as <error> and the terminal as ERROR, as for a failing fixture.
        report.when = "setup"
    if report.skipped and result is None and hasattr(item, "record_skipped"):
        item.record_skipped(report)
    if _is_worker(item.config) and call.when == "teardown":
        # Each finished result travels with its own report, so a worker that crashes later
        # loses none of them (the controller takes it off again before JUnit sees it).
        for record in get_session(item.config).take_unsent(item.nodeid):
            report.user_properties.append((RECORD_PROPERTY, record))
    wants_html = item.config.pluginmanager.hasplugin("html") and item.config.getoption(
        "htmlpath", None
    )
    # Rendering plots costs about 0.3 s a check: only when pytest-html writes a report.
    if call.when == "call" and result is not None and wants_html:
        from pytest_html import extras

        from robustness_checks.reporting.plots import example_images, plot_for

        figures = [svg for svg in (plot_for(result), example_images(result)) if svg]
        report.extras = [*getattr(report, "extras", []), *map(extras.html, figures)]
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport):  # type: ignore[no-untyped-def]
    """A check that could not measure is logged as an error (JUnit <error>, ERROR), then named
    as an error of the check's own run ('ERROR at call of'), not of a setup that never failed."""
    result = yield
    if report.when == "setup" and _check_error(report):
        report.when = "call"
    return result


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """A check's error stays ERROR in the short summary once it is named as the call's."""
    if report.when == "call" and _check_error(report):
        return "error", "E", "ERROR"
    return None


def _check_error(report: pytest.TestReport) -> bool:
    return report.failed and ("outcome", "error") in report.user_properties


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a CI job cancelled, a pod evicted) ends the run like Ctrl-C: finished checks
    reach every report, marked incomplete. Only where nobody else handles SIGTERM."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = get_session(config)
    if _is_worker(config):
        config.workeroutput[WORKER_OUTPUT_KEY] = state.to_worker_output()  # type: ignore[attr-defined]
        return
    if state.rank != 0:
        return
    from robustness_checks.plugin.outputs import write_outputs

    failed = write_outputs(config, state, complete=exitstatus != pytest.ExitCode.INTERRUPTED)
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    token = config.stash.get(_SETTINGS_TOKEN, None)
    if token is not None:
        reset_session_layers(token)
    state = config.stash.get(session_key, None)
    if state is not None and state.world_size > 1:
        import torch.distributed as dist

        dist.destroy_process_group()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _is_worker(config) or get_session(config).rank != 0:
        return
    state = get_session(config)
    results = state.sorted_results()
    if not results and not state.notes:
        return
    from robustness_checks.reporting.terminal import (
        regression_lines,
        safe_text,
        summary_lines,
        warning_lines,
    )

    terminalreporter.write_sep("-", "robustness checks")
    for line in summary_lines(results) if results else []:
        terminalreporter.write_line(line)
    for line in regression_lines(results):
        terminalreporter.write_line(line, red=True)
    for line in warning_lines(results):
        terminalreporter.write_line(line, yellow=True)
    if state.gate.active and results:
        for line in state.gate.coverage_lines(results):
            terminalreporter.write_line(safe_text(line), yellow=line.startswith("warning"))
    written = " ".join(state.notes)
    for note in state.notes:
        error = note.startswith("error:")
        terminalreporter.write_line(safe_text(note), red=error, yellow=not error)
    for option, what in (("robustness_json", "JSON report"), ("robustness_html", "HTML report")):
        path = config.getoption(option)
        if path and f"the {what} ({path}) could not be written" not in written:
            terminalreporter.write_line(f"{what.split()[0]} report written to {path}")
