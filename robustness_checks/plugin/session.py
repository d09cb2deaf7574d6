"""Per-session state: loaded spec runtimes, collected results, and the xdist hand-over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robustness_checks.results import CheckResult

WORKER_OUTPUT_KEY = "robustness_checks"
RECORD_PROPERTY = "robustness_checks_record"  # a worker's result on its way to the controller


class RobustnessSession:
    """Shared by every item of one pytest session (one per xdist worker, one for the controller)."""

    def __init__(self, config: pytest.Config, rank: int = 0, world_size: int = 1):
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
        from robustness_checks.plugin.gate import Gate

        self.gate = Gate(config)
        self._runtimes: dict[Path, Any] = {}

    def runtime(self, document: Any) -> Any:
        """The spec's loaded model and data, loaded on first use; a load error is re-raised for
        every check of the spec."""
        from robustness_checks.execution.runtime import SpecRuntime

        key = document.path.resolve()
        if key not in self._runtimes:
            try:
                runtime = SpecRuntime.load(
                    document,
                    device=self.config.getoption("robustness_device"),
                    seed=self.config.getoption("robustness_seed"),
                )
                runtime.decision = self.config.getoption("robustness_decision")
                runtime.default_decision = self.config.getini("robustness_decision") or "point"
                self._runtimes[key] = runtime
            except Exception as error:
                self._runtimes[key] = error
        loaded = self._runtimes[key]
        if isinstance(loaded, Exception):
            raise loaded
        device = str(loaded.device)
        if device not in self.devices:
            self.devices.append(device)
        return loaded

    def record(
        self,
        nodeid: str,
        spec: str | None,
        result: CheckResult,
        order: tuple,
        fingerprints: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        record = {"nodeid": nodeid, "spec": spec, **result.to_dict()}
        if fingerprints:
            record["fingerprints"] = fingerprints
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
        self.record(nodeid, spec, result, (0, spec, 10**9))

    def to_worker_output(self) -> dict[str, Any]:
        return {"results": self.results, "devices": self.devices, "specs": self.specs}

    def merge_worker_output(self, output: dict[str, Any]) -> None:
        for record in output.get("results", []):
            self.merge_record(record)
        self.specs.update(output.get("specs", {}))
        for device in output.get("devices", []):
            if device not in self.devices:
                self.devices.append(device)


session_key = pytest.StashKey[RobustnessSession]()


def get_session(config: pytest.Config) -> RobustnessSession:
    return config.stash[session_key]
