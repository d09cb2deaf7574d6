"""The `robustness` fixture: run or record checks inside test functions so they reach reports."""

from __future__ import annotations

from typing import Any

import pytest

from robustness_checks.plugin.session import get_session


class Recorder:
    """Records `CheckResult`s made in a test; `robustness.calibration(model, data, ...)` runs and
    records in one call."""

    def __init__(self, item: pytest.Item):
        self._item = item
        self._count = 0

    def record(self, result: Any) -> Any:
        """Add `result` to every report (JSON, JUnit properties, summary); returns it."""
        from robustness_checks.reporting.junit import junit_properties

        nodeid = self._item.nodeid
        spec = nodeid.split("::", 1)[0]
        get_session(self._item.config).record(nodeid, spec, result, (1, nodeid, self._count))
        self._count += 1
        self._item.user_properties.extend(junit_properties(result))
        return result

    def run(self, type: str, model: Any, data: Any, **params: Any) -> Any:
        """Run a check of `type` (as `robustness_checks.run_check`) and record its result."""
        from robustness_checks.api import run_check

        params.setdefault("name", type)
        return self.record(run_check(type, model, data, **params))

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
            return self.record(function(*args, **kwargs))

        return run_and_record


@pytest.fixture
def robustness(request: pytest.FixtureRequest) -> Recorder:
    """Records robustness results made in this test into the JSON, JUnit and terminal reports."""
    return Recorder(request.node)
