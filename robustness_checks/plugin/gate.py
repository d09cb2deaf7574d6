"""Release gating in the plugin: load the baseline once, compare each check's result with it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest


class DataChangedWarning(UserWarning):
    """The baseline was measured on other data: its numbers are not comparable."""


class Gate:
    """The baseline and rules of this session (both empty when no comparison was asked for)."""

    def __init__(self, config: pytest.Config):
        from robustness_checks.gating.baseline import BaselineError, load_baseline, parse_rule

        self.storage = Path(config.rootpath) / config.getoption("robustness_storage")
        reference = config.getoption("robustness_compare")
        expressions = config.getoption("robustness_compare_fail") or []
        self.records: dict[str, dict[str, Any]] = {}
        self.name = ""
        try:
            self.rules = [parse_rule(text) for text in expressions]
            if self.rules and reference is None:
                raise BaselineError(
                    "--robustness-compare-fail needs a baseline: add "
                    "--robustness-compare[=NAME|PATH]"
                )
            if reference is not None:
                baseline = load_baseline(self.storage, reference or None)
                self.name = baseline["baseline"]
                self.records = {r["nodeid"]: r for r in baseline.get("results", [])}
        except BaselineError as error:
            raise pytest.UsageError(str(error)) from None

    @property
    def active(self) -> bool:
        return bool(self.records)

    def judge(self, record: dict[str, Any]) -> str | None:
        """Annotate `record` with the baseline's value; a message if it regressed."""
        from robustness_checks.gating.baseline import regression

        before = self.records.get(record["nodeid"])
        if before is None:
            return None
        now_prints = record.get("fingerprints") or {}
        old_prints = before.get("fingerprints") or {}
        data_changed = bool(
            now_prints.get("data")
            and old_prints.get("data")
            and now_prints["data"] != old_prints["data"]
        )
        model_changed = bool(
            now_prints.get("model")
            and old_prints.get("model")
            and now_prints["model"] != old_prints["model"]
        )
        record.setdefault("details", {})["baseline"] = {
            "name": self.name,
            "value": before.get("value"),
            "data_changed": data_changed,
            "model_changed": model_changed,
        }
        if data_changed:
            warnings.warn(
                DataChangedWarning(
                    f"{record['nodeid']}: the data differs from baseline {self.name!r}, so its "
                    f"numbers are not comparable; the regression gate is skipped for this check"
                ),
                stacklevel=2,
            )
            return None
        return regression(record, {**before, "_name": self.name}, self.rules)
