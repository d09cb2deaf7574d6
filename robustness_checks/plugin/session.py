"""Per-session state: settings, loaded spec runtimes, collected results, the xdist hand-over."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from robustness_checks.results import CheckResult

WORKER_OUTPUT_KEY = "robustness_checks"
RECORD_PROPERTY = "robustness_checks_record"  # a worker's result on its way to the controller

# Where each run setting of the command line and the ini file came from, for messages.
COMMAND_LINE_NAMES = {
    "seed": "--robustness-seed",
    "decision": "--robustness-decision",
    "timeout": "--robustness-timeout",
    "device": "--robustness-device",
}
INI_NAMES = {"decision": "ini option robustness_decision"}


class RobustnessSession:
    """Shared by every item of one pytest session (one per xdist worker, one for the controller)."""

    def __init__(self, config: pytest.Config, rank: int = 0, world_size: int = 1):
        from robustness_checks.plugin.gate import Gate
        from robustness_checks.settings import SettingsError, SettingsLayer

        self.config = config
        # torch.distributed rank and size under torchrun (plain ints: no torch import here).
        self.rank = rank
        self.world_size = world_size
        self.results: list[dict[str, Any]] = []
        self.devices: list[str] = []
        self.spec_errors = 0
        self.specs: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []  # lines for the terminal summary (e.g. a baseline not saved)
        self._sent = 0  # results already handed to the controller (xdist workers)
        try:
            self.command_line = SettingsLayer.parse(
                COMMAND_LINE_NAMES,
                **{name: config.getoption(f"robustness_{name}") for name in COMMAND_LINE_NAMES},
            )
            self.ini = SettingsLayer.parse(
                INI_NAMES, decision=config.getini("robustness_decision") or None
            )
        except SettingsError as error:
            raise pytest.UsageError(str(error)) from None
        rounds = config.getoption("robustness_rounds")
        if rounds < 1:
            raise pytest.UsageError(f"--robustness-rounds: must be at least 1 (got {rounds})")
        self.gate = Gate(config)
        self._runtimes: dict[Path, Any] = {}

    def settings(self, check: Any, spec: Any) -> Any:
        """The check's RunSettings: command line, check, spec, ini, defaults."""
        from robustness_checks.settings import check_layer, resolve, spec_layer

        return resolve(
            [
                ("command line", self.command_line),
                ("check", check_layer(check)),
                ("spec", spec_layer(spec)),
                ("ini", self.ini),
            ]
        )

    def runtime(self, document: Any) -> Any:
        """The spec's loaded model and data, loaded on first use; a load error is re-raised for
        every check of the spec."""
        from robustness_checks.execution.runtime import SpecRuntime
        from robustness_checks.settings import resolve, spec_layer

        key = document.path.resolve()
        if key not in self._runtimes:
            device = resolve(
                [("command line", self.command_line), ("spec", spec_layer(document.spec))]
            ).device
            source = "--robustness-device" if self.command_line.device else "device"
            try:
                self._runtimes[key] = SpecRuntime.load(document, device=device, source=source)
            except Exception as error:
                self._runtimes[key] = error
        loaded = self._runtimes[key]
        if isinstance(loaded, Exception):
            raise loaded
        device = str(loaded.device)
        if device not in self.devices:
            self.devices.append(device)
        return loaded

    def keep(
        self,
        result: CheckResult,
        *,
        nodeid: str,
        spec: str | None,
        order: tuple,
        record_id: str | None = None,
    ) -> Kept:
        """Record `result` for every report and compare it with the baseline: the record, the
        regression message (None when none) and the JUnit properties, which agree with it."""
        from robustness_checks.reporting.junit import junit_properties

        record = {"nodeid": nodeid, "id": record_id or nodeid, "spec": spec, **result.to_dict()}
        regression = self.gate.judge(record) if self.gate.active else None
        properties = junit_properties(result)
        if regression:
            record["passed"] = False
            record["outcome"] = "failed"
            record["regression"] = regression
            record["message"] = f"regression: {regression}; {record['message']}"
            # JUnit must agree with the JSON: a gated failure is not passed there either.
            properties = [
                (name, {"passed": "false", "outcome": "failed"}.get(name, value))
                for name, value in properties
            ]
            properties.append(("regression", regression))
        self.record(record, order)
        return Kept(record, regression, properties)

    def record(self, record: dict[str, Any], order: tuple) -> dict[str, Any]:
        """Keep a results record (with its position in the reports' order)."""
        record["_order"] = list(order)
        self.results.append(record)
        return record

    def sorted_results(self) -> list[dict[str, Any]]:
        """Results in a stable order (spec, position), without internal keys."""
        ordered = sorted(self.results, key=lambda record: record["_order"])
        return [{k: v for k, v in record.items() if k != "_order"} for record in ordered]

    def take_unsent(self, nodeid: str) -> list[dict[str, Any]]:
        """The results recorded since the last hand-over (a worker sends them with a report)."""
        unsent = self.results[self._sent :]
        self._sent = len(self.results)
        return unsent

    def merge_record(self, record: dict[str, Any]) -> None:
        """A worker's result (each arrives once, with its report or at the worker's end)."""
        key = (record["nodeid"], tuple(record["_order"]))
        if all((r["nodeid"], tuple(r["_order"])) != key for r in self.results):
            self.results.append(record)

    def record_crash(self, nodeid: str, reason: str) -> None:
        """An error result for the check a crashed xdist worker was running."""
        if any(r["nodeid"] == nodeid for r in self.results):
            return
        spec, _, check = nodeid.partition("::")
        result = CheckResult(
            check=check,
            type="",
            metric="",
            value=float("nan"),
            outcome="error",
            error=f"the pytest-xdist worker crashed while running this check: {reason}",
        )
        self.record(
            {"nodeid": nodeid, "id": nodeid, "spec": spec, **result.to_dict()}, (0, spec, 10**9)
        )

    def to_worker_output(self) -> dict[str, Any]:
        return {"results": self.results, "devices": self.devices, "specs": self.specs}

    def merge_worker_output(self, output: dict[str, Any]) -> None:
        for record in output.get("results", []):
            self.merge_record(record)
        self.specs.update(output.get("specs", {}))
        for device in output.get("devices", []):
            if device not in self.devices:
                self.devices.append(device)


@dataclass
class Kept:
    """A recorded result: its results-file record, regression message and JUnit properties."""

    record: dict[str, Any]
    regression: str | None
    properties: list[tuple[str, object]]


session_key = pytest.StashKey[RobustnessSession]()


def get_session(config: pytest.Config) -> RobustnessSession:
    return config.stash[session_key]
