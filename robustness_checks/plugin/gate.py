"""Release gating in the plugin: load the baseline once, compare each check's result with it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

SPECIAL_KEYS = ("*", "evaluations", "seconds")


class DataChangedWarning(UserWarning):
    """The baseline was measured on other data: its numbers are not comparable."""


class SettingsChangedWarning(UserWarning):
    """The check's settings differ from the baseline's: a weakened check must not pass quietly."""


class Gate:
    """The baseline and rules of this session (both empty when no comparison was asked for)."""

    def __init__(self, config: pytest.Config):
        from robustness_checks.gating.baseline import (
            BaselineError,
            check_save_name,
            load_baseline,
            parse_rule,
        )

        self.storage = Path(config.rootpath) / config.getoption("robustness_storage")
        reference = config.getoption("robustness_compare")
        expressions = config.getoption("robustness_compare_fail") or []
        self.strict = bool(config.getoption("robustness_compare_strict"))
        self.records: dict[str, dict[str, Any]] = {}
        self.name = ""
        try:
            if config.getoption("robustness_save"):
                check_save_name(config.getoption("robustness_save"))
            self.rules = [parse_rule(text) for text in expressions]
            if self.rules and reference is None:
                raise BaselineError(
                    "--robustness-compare-fail needs a baseline: add "
                    "--robustness-compare[=NAME|PATH]"
                )
            if reference is not None:
                baseline = load_baseline(self.storage, reference or None)
                self.name = baseline["baseline"]
                self.records = {r["nodeid"]: r for r in baseline["results"]}
                self._check_keys()
        except BaselineError as error:
            raise pytest.UsageError(str(error)) from None

    def _check_keys(self) -> None:
        """A rule whose KEY matches nothing would gate nothing: refuse it, listing the keys."""
        from robustness_checks.checks.registry import CHECK_TYPES
        from robustness_checks.gating.baseline import BaselineError

        metrics = {m for entry in CHECK_TYPES.values() for m in entry.metrics}
        names = {r.get("check") for r in self.records.values()}
        known = set(SPECIAL_KEYS) | metrics | set(CHECK_TYPES) | {n for n in names if n}
        for rule in self.rules:
            if rule.key not in known:
                raise BaselineError(
                    f"--robustness-compare-fail {rule.text!r}: unknown key {rule.key!r}; a key is "
                    f"a metric ({', '.join(sorted(metrics))}), a check type "
                    f"({', '.join(sorted(CHECK_TYPES))}), a check name of baseline "
                    f"{self.name!r}, evaluations, seconds or *"
                )

    @property
    def active(self) -> bool:
        return bool(self.records)

    def baseline_for(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The baseline record of the same check: the same node id, else the same check name in
        the spec file whose path is the same from the deepest common folder (so another
        --rootdir, which changes node ids, still compares every check)."""
        exact = self.records.get(record["nodeid"])
        if exact is not None:
            return exact
        spec, check = record.get("spec") or "", record.get("check")
        candidates = [
            before
            for before in self.records.values()
            if before.get("check") == check and _same_file(before.get("spec") or "", spec)
        ]
        return candidates[0] if len(candidates) == 1 else None

    def judge(self, record: dict[str, Any]) -> str | None:
        """Annotate `record` with the baseline's value; a message if it regressed."""
        from robustness_checks.gating.baseline import COST_KEYS, regression

        before = self.baseline_for(record)
        if before is None:
            return None
        now_prints = record.get("fingerprints") or {}
        old_prints = before.get("fingerprints") or {}
        changed = {
            key: bool(
                now_prints.get(key) and old_prints.get(key) and now_prints[key] != old_prints[key]
            )
            for key in ("data", "model", "check")
        }
        record.setdefault("details", {})["baseline"] = {
            "name": self.name,
            "value": before.get("value"),
            "data_changed": changed["data"],
            "model_changed": changed["model"],
            "settings_changed": changed["check"],
        }
        if changed["data"]:
            warnings.warn(
                DataChangedWarning(
                    f"{record['nodeid']}: the data differs from baseline {self.name!r}, so its "
                    f"numbers are not comparable; the regression gate is skipped for this check"
                ),
                stacklevel=2,
            )
            return None
        if changed["check"]:
            text = (
                f"{record['nodeid']}: the check's settings (attack, eps, steps, estimator, bounds, "
                f"decision, ...) differ from baseline {self.name!r}, so its values are not gated"
            )
            if self.strict:
                return text + " (--robustness-compare-strict fails it)"
            warnings.warn(SettingsChangedWarning(text), stacklevel=2)
            # What it costs is still comparable: a change that makes a check dearer is gated.
            cost = [rule for rule in self.rules if rule.key in COST_KEYS]
            return regression(record, {**before, "_name": self.name}, cost)
        return regression(record, {**before, "_name": self.name}, self.rules)

    def coverage(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        """How much of the run was compared (from the results, which under xdist were judged in
        the workers): for the terminal summary and the JSON."""
        compared = [r for r in results if "baseline" in (r.get("details") or {})]
        matched = {(self.baseline_for(r) or {}).get("nodeid") for r in compared}
        return {
            "baseline": self.name,
            "compared": len(compared),
            "checks": len(results),
            "not_in_baseline": sorted(
                r["nodeid"] for r in results if "baseline" not in (r.get("details") or {})
            ),
            "not_in_run": sorted(set(self.records) - matched),
        }

    def coverage_lines(self, results: list[dict[str, Any]]) -> list[str]:
        """'compared N of M checks against baseline NAME', then what was not compared."""
        found = self.coverage(results)
        lines = [
            f"compared {found['compared']} of {found['checks']} checks against baseline "
            f"{self.name!r}"
        ]
        if found["not_in_baseline"]:
            lines.append(
                f"warning: {len(found['not_in_baseline'])} checks are not in baseline "
                f"{self.name!r} and were not gated: {', '.join(found['not_in_baseline'][:10])}"
            )
        if found["not_in_run"]:
            lines.append(
                f"warning: {len(found['not_in_run'])} checks of baseline {self.name!r} did not "
                f"run: {', '.join(found['not_in_run'][:10])}"
            )
        return lines


def _same_file(one: str, other: str) -> bool:
    """Whether two spec paths (relative to different rootdirs) name the same file: one is the
    other's suffix by whole path components."""
    a, b = Path(one).parts, Path(other).parts
    shorter = min(len(a), len(b))
    return shorter > 0 and a[-shorter:] == b[-shorter:]
