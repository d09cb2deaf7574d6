"""Spec collection: a YAML spec file is a pytest collector whose items are its checks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from robustness_checks.plugin.session import get_session

SPEC_SUFFIXES = (".robustness.yaml", ".robustness.yml")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SpecFile | None:
    named_spec = file_path.name.endswith(SPEC_SUFFIXES)
    given_yaml = file_path.suffix in (".yaml", ".yml") and parent.session.isinitpath(file_path)
    if named_spec or given_yaml:
        return SpecFile.from_parent(parent, path=file_path)
    return None


_LIBRARY_PARTS = ("robustness_checks", "site-packages", "dist-packages", "/lib/python")


def _user_frame(path: str) -> bool:
    """Whether a traceback frame is the user's code (factories, models), not a library's."""
    return not any(part in path for part in _LIBRARY_PARTS)


def _configuration_error(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """Whether the error says what to fix by itself: one of this library's errors, or any error
    raised on purpose by this library's own code (a method the model cannot support, an option
    out of range), whose frames would only hide the message."""
    from robustness_checks.errors import RobustnessError

    if isinstance(excinfo.value, RobustnessError):
        return True
    innermost = str(excinfo.traceback[-1].path) if len(excinfo.traceback) else ""
    return str(_PACKAGE_DIR) in innermost and isinstance(excinfo.value, ValueError)


_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def checks_of(config: pytest.Config, ids: list[str]) -> list[tuple[str, Any]]:
    """(node id, check parameters) for node ids of spec checks, (node id, None) for the others:
    read from the spec files without running them (the xdist controller collects nothing)."""
    from robustness_checks.spec.parse import load_spec

    specs: dict[str, Any] = {}
    found: list[tuple[str, Any]] = []
    for nodeid in ids:
        path, _, name = nodeid.partition("::")
        check = None
        if path.endswith((".yaml", ".yml")):
            if path not in specs:
                try:
                    specs[path] = load_spec(Path(config.rootpath) / path, check_sources=False)
                except Exception:  # its collection error is reported by the workers
                    specs[path] = None
            document = specs[path]
            if document is not None:
                check = next((c for c in document.spec.checks if c.name == name), None)
        found.append((nodeid, check))
    return found


class CheckFailed(Exception):
    """A check that ran and did not meet its bound."""

    def __init__(self, result: Any, regression: str | None = None):
        message = result.message if regression is None else f"regression: {regression}"
        if regression is not None and not result.passed:
            message += f"; and {result.message}"
        super().__init__(message)
        self.result = result


class SpecFile(pytest.File):
    """One spec file; validated at collection, loaded on the first check that runs."""

    document: Any = None

    def collect(self):  # type: ignore[override]
        from robustness_checks.errors import SpecError
        from robustness_checks.spec.parse import load_spec

        try:
            self.document = load_spec(self.path)
        except SpecError as error:
            get_session(self.config).spec_errors += 1
            raise self.CollectError(error.render()) from None
        except Exception as error:  # anything else about one spec stays that spec's error
            get_session(self.config).spec_errors += 1
            raise self.CollectError(
                f"invalid robustness spec {self.path}: {type(error).__name__}: {error}"
            ) from None
        seed = self.config.getoption("robustness_seed")
        get_session(self.config).specs[self.nodeid] = {
            "sha256": self.document.sha256,
            "seed": self.document.spec.seed if seed is None else seed,
        }
        for index, check in enumerate(self.document.spec.checks):
            item = CheckItem.from_parent(self, name=check.name, check=check, index=index)
            item.add_marker("robustness")
            # `-k adversarial` or `-k ece` selects by check type and metric, not only by name.
            item.extra_keyword_matches.update(
                word for word in (check.type, getattr(check, "metric", None)) if word
            )
            for mark in check.marks:
                item.add_marker(mark)
            yield item


class CheckItem(pytest.Item):
    """One check of a spec; its id is the check's name."""

    def __init__(self, *, check: Any, index: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.check = check
        self.index = index
        self.result: Any = None

    @property
    def spec_file(self) -> SpecFile:
        assert isinstance(self.parent, SpecFile)
        return self.parent

    def runtest(self) -> None:
        from robustness_checks.checks.runner import emit_warnings, error_result, execute
        from robustness_checks.plugin.benchmark import benchmark_session, benchmarked

        state = get_session(self.config)
        document = self.spec_file.document
        settings = state.settings(self.check, document.spec)
        start = time.perf_counter()
        context = runtime = None

        # A check timed in rounds (pytest-benchmark, --robustness-rounds) pays for its own clean
        # passes in every round, rather than timing a neighbour's cached ones.
        timed = benchmark_session(self.config) is not None or (
            self.config.getoption("robustness_rounds") > 1
        )

        def run_once() -> Any:  # a fresh context a round: pytest-benchmark may repeat it
            nonlocal context
            context = runtime.context(self.check, settings)
            if timed:
                context.shared = None
            context.watch(self._watch(settings.timeout))
            return execute(context, self.check)

        def run_rounds() -> Any:
            """--robustness-rounds N: N runs, the last one's result with the fastest time, so a
            seconds gate compares minima rather than one noisy run."""
            times = []
            for _ in range(self.config.getoption("robustness_rounds")):
                outcome = run_once()
                times.append(outcome.seconds)
            outcome.seconds = min(times)
            if len(times) > 1:
                outcome.rounds_seconds = times
            return outcome

        try:
            runtime = state.runtime(document)
            result = benchmarked(self, run_rounds)
            result.fingerprints = runtime.fingerprints(self.check, settings)
            result.settings = runtime.measured(self.check, settings)
        except BaseException as error:  # KeyboardInterrupt and SystemExit too: recorded, raised
            result = error_result(
                self.check,
                error,
                confidence=settings.confidence,
                seconds=time.perf_counter() - start,
                evaluations=context.evaluations if context else 0,
            )
            self._record(result)
            raise
        regressed = self._record(result)
        emit_warnings(result)  # after recording: with -W error the result is kept
        if regressed:
            raise CheckFailed(result, regressed)
        if not result.passed:
            raise CheckFailed(result)

    def _watch(self, timeout: float | None) -> Any:
        """The check's timeout and a progress line: every 5 s on a terminal or with -v, every
        30 s otherwise (CI logs, where pytest prints only dots)."""
        from robustness_checks.execution.watch import Watch

        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return Watch(self.name, timeout)
        lively = self.config.get_verbosity() > 0 or getattr(reporter, "isatty", False)
        capture = self.config.pluginmanager.get_plugin("capturemanager")

        def report(line: str) -> None:
            if capture is None:
                reporter.write_line(line)
                return
            with capture.global_and_fixture_disabled():  # live, past pytest's output capture
                reporter.write_line(line)

        return Watch(self.name, timeout, report, 5.0 if lively else 30.0)

    def record_skipped(self, report: pytest.TestReport) -> None:
        """A skipped check is in every report too, with outcome skipped and the reason."""
        from robustness_checks.results import CheckResult

        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        result = CheckResult(
            check=self.check.name,
            type=self.check.type,
            metric=getattr(self.check, "metric", self.check.type),
            value=float("nan"),
            outcome="skipped",
            statement=f"skipped: {reason}",
        )
        self._record(result)

    def _record(self, result: Any) -> str | None:
        """Record the result; with a baseline, return the regression message if it regressed."""
        self.result = result
        spec = self.nodeid.split("::", 1)[0]
        found = get_session(self.config).keep(
            result, nodeid=self.nodeid, spec=spec, order=(0, spec, self.index)
        )
        self.user_properties.extend(found.properties)
        return found.regression

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.check.type} check {self.name!r} failed: {excinfo.value}"
        kind = type(excinfo.value).__name__
        header = f"{self.check.type} check {self.name!r} could not run: {kind}: {excinfo.value}"
        cause = excinfo.value.__cause__
        if cause is not None and str(cause) not in header:
            header += f" (caused by {type(cause).__name__}: {cause})"
        tbstyle = self.config.getoption("tbstyle", "auto")
        if tbstyle in ("no", "line") or (tbstyle == "auto" and _configuration_error(excinfo)):
            return header
        # Anything else (the model raising, say) is a bug to find in the user's code: only
        # their own frames follow, not this library's, torch's, pytest's or pluggy's.
        own = excinfo.traceback.filter(lambda entry: _user_frame(str(entry.path)))
        if len(own):
            excinfo.traceback = own
        elif tbstyle == "auto":
            return f"{header}\n(no frame of your code is involved; --tb=long shows the library's)"
        shown = excinfo.getrepr(style="short" if tbstyle == "auto" else tbstyle, chain=False)
        return f"{header}\n\n{shown}"

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.spec_file.document.lines.line(("checks", self.index))
        return self.path, None if line is None else line - 1, f"{self.check.type}: {self.name}"
