"""The `robustness` fixture: run or record checks inside test functions so they reach reports."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from robustness_checks.plugin.session import get_session

# Regressions found in a test's recorded results; its report fails with them.
REGRESSIONS = pytest.StashKey[list[str]]()


class Recorder:
    """Records `CheckResult`s made in a test; `robustness.calibration(model, data, ...)` runs and
    records in one call. Recorded results are compared with the baseline like spec checks: the
    checks it runs carry fingerprints of model, data and settings, made under the session's
    command line and ini settings whatever thread the test calls it from."""

    def __init__(self, item: pytest.Item):
        self._item = item
        self._count = 0
        self._names: dict[str, int] = {}

    def record(self, result: Any) -> Any:
        """Add `result` to every report (JSON, JUnit properties, summary, baseline); returns it."""
        from robustness_checks.results import CheckResult

        if not isinstance(result, CheckResult):
            raise TypeError(
                f"robustness.record() takes a CheckResult (what robustness_checks' check "
                f"functions return), not a {type(result).__name__}"
            )
        nodeid = self._item.nodeid
        seen = self._names[result.check] = self._names.get(result.check, 0) + 1
        record_id = f"{nodeid}::{result.check}" + (f"#{seen}" if seen > 1 else "")
        found = get_session(self._item.config).keep(
            result,
            nodeid=nodeid,
            spec=nodeid.split("::", 1)[0],
            order=(1, nodeid, self._count),
            record_id=record_id,
        )
        self._count += 1
        self._item.user_properties.extend(found.properties)
        if found.regression:
            self._item.stash.setdefault(REGRESSIONS, []).append(
                f"{result.check}: regression: {found.regression}"
            )
        return result

    def run(self, type: str, model: Any, data: Any, **params: Any) -> Any:
        """Run a check of `type` (as `robustness_checks.run_check`) and record its result."""
        from robustness_checks.api import run_check

        params.setdefault("name", type)
        with self._session_settings():
            result = run_check(type, model, data, **params)
        return self.record(result)

    def __getattr__(self, name: str) -> Any:
        """`robustness.<type>(...)`: the library's check function (same arguments), recorded."""
        import functools

        from robustness_checks import api
        from robustness_checks.checks.registry import CHECK_TYPES

        if name not in CHECK_TYPES:
            known = ", ".join(sorted(CHECK_TYPES))
            raise AttributeError(
                f"'robustness' fixture has no attribute {name!r}; check types: {known}"
            )
        function = getattr(api, name)

        @functools.wraps(function)
        def run_and_record(*args: Any, **kwargs: Any) -> Any:
            with self._session_settings():
                result = function(*args, **kwargs)
            return self.record(result)

        return run_and_record

    def _session_settings(self) -> contextlib.AbstractContextManager[None]:
        """The session's command-line and ini settings for a check run here; they also make the
        library fingerprint it (a thread the test started does not inherit them otherwise)."""
        from robustness_checks.settings import session_layers

        state = get_session(self._item.config)
        return session_layers(state.command_line, state.ini)


@pytest.fixture
def robustness(request: pytest.FixtureRequest) -> Recorder:
    """Records robustness results made in this test into the JSON, JUnit and terminal reports,
    and compares them with the baseline (--robustness-compare) like spec checks."""
    return Recorder(request.node)
