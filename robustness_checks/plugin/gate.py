"""Release gating in the plugin: load the baseline once, compare each recorded result with it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

SPECIAL_KEYS = ("*", "evaluations", "seconds")


class NotComparableWarning(UserWarning):
    """A check whose baseline cannot be compared with it (changed data or settings, no value)."""


# Names of earlier versions, kept for filters users wrote.
DataChangedWarning = SettingsChangedWarning = NotComparableWarning


class Gate:
    """The baseline and rules of this session (inactive when no comparison was asked for)."""

    def __init__(self, config: pytest.Config):
        from robustness_checks.gating.baseline import (
            BaselineError,
            check_save_name,
            load_baseline,
            parse_rule,
        )
        from robustness_checks.gating.compare import Comparator

        self.storage = Path(config.rootpath) / config.getoption("robustness_storage")
        reference = config.getoption("robustness_compare")
        expressions = config.getoption("robustness_compare_fail") or []
        self.strict = bool(config.getoption("robustness_compare_strict"))
        self.comparator: Comparator | None = None
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
                self.comparator = Comparator(baseline, self.rules, self.strict)
        except BaselineError as error:
            raise pytest.UsageError(str(error)) from None

    @property
    def active(self) -> bool:
        return self.comparator is not None

    @property
    def name(self) -> str:
        return self.comparator.name if self.comparator else ""

    def check_rule_keys(self, items: list[pytest.Item]) -> None:
        """A rule whose key matches no check type, name or gated metric of the checks about to
        run would gate nothing: a usage error naming the rule and the keys that exist."""
        self.check_rule_keys_of([(item.nodeid, getattr(item, "check", None)) for item in items])

    def check_rule_keys_of(self, collected: list[tuple[str, Any]]) -> None:
        """`check_rule_keys` from (node id, check parameters or None) pairs: the parameters of
        spec checks, None for test functions (their recorded results are known from the
        baseline)."""
        if self.comparator is None or not self.rules or not collected:
            return
        import difflib
        import fnmatch

        from robustness_checks.checks.registry import CHECK_TYPES
        from robustness_checks.gating.compare import rule_keys

        types, names, metrics = set(), set(), set()
        for _, check in collected:
            entry = CHECK_TYPES.get(getattr(check, "type", ""))
            if entry is not None:
                types.add(check.type)
                names.add(check.name)
                metrics.update(entry.gated_metrics(check))
        ids = {nodeid for nodeid, _ in collected}
        recorded = [r for r in self.comparator.records.values() if r.get("nodeid") in ids]
        found = rule_keys(recorded)
        types |= found["types"]
        names |= found["names"]
        metrics |= found["metrics"]
        for rule in self.rules:
            if rule.key in SPECIAL_KEYS or rule.key in types or rule.key in metrics:
                continue
            if any(fnmatch.fnmatchcase(name, rule.key) for name in names):
                continue
            close = difflib.get_close_matches(rule.key, [*types, *metrics, *names], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise pytest.UsageError(
                f"--robustness-compare-fail {rule.text!r}: the key {rule.key!r}{hint} matches no "
                "check of this run, so the rule would gate nothing. Keys that exist: check types "
                f"({', '.join(sorted(types)) or 'none'}), gated metrics "
                f"({', '.join(sorted(metrics)) or 'none'}), check names "
                f"({', '.join(sorted(names)[:10]) or 'none'}"
                f"{', ...' if len(names) > 10 else ''}), evaluations, seconds and *"
            )

    def judge(self, record: dict[str, Any]) -> str | None:
        """Annotate `record` with its comparison; the regression message if it regressed."""
        if self.comparator is None:
            return None
        found = self.comparator.judge(record)
        record["baseline"] = found.as_json()
        if found.reasons and not self.strict:
            warnings.warn(
                NotComparableWarning(
                    f"{record.get('id') or record['nodeid']}: not comparable with baseline "
                    f"{self.name!r}, so its values are not gated: {'; '.join(found.reasons)} "
                    "(--robustness-compare-strict fails such checks)"
                ),
                stacklevel=2,
            )
        return "; ".join(found.regressions) if found.regressions else None

    def coverage(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.comparator is not None
        return self.comparator.coverage(results)

    def coverage_lines(self, results: list[dict[str, Any]]) -> list[str]:
        """'compared N of M checks against baseline NAME', then what was not compared."""
        found = self.coverage(results)
        lines = [
            f"compared {found['compared']} of {found['checks']} checks against baseline "
            f"{self.name!r}" + (f" ({found['gated']} gated by a rule)" if self.rules else "")
        ]
        for key, text in (
            ("not_comparable", "are not comparable with baseline {name!r} (see their warnings)"),
            ("not_in_baseline", "are not in baseline {name!r} and were not gated"),
            ("not_in_run", "of baseline {name!r} did not run"),
        ):
            if found[key]:
                shown = ", ".join(found[key][:10]) + (", ..." if len(found[key]) > 10 else "")
                lines.append(
                    f"warning: {len(found[key])} checks {text.format(name=self.name)}: {shown}"
                )
        # Which rules gated a value is in each record (judged in the xdist workers).
        used = {text for r in results for text in (r.get("baseline") or {}).get("rules") or []}
        unused = [rule.text for rule in self.rules if rule.key not in ("evaluations", "seconds")]
        idle = [text for text in unused if text not in used]
        if idle and results:
            lines.append(f"warning: rules that gated no value: {', '.join(idle)}")
        return lines
