"""Compare a run's results with a baseline: every gated value, under every rule that matches it."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robustness_checks.details import GatedValue
from robustness_checks.fingerprints import Fingerprints
from robustness_checks.gating.baseline import COST_KEYS, SECONDS_FLOOR, Rule
from robustness_checks.gating.settings_diff import settings_changes
from robustness_checks.results import format_number

Status = Literal["compared", "not comparable", "not in baseline"]


@dataclass
class Comparison:
    """What comparing one check with its baseline found."""

    baseline: str
    status: Status
    reasons: list[str] = field(default_factory=list)  # why it is not comparable
    compared: int = 0  # gated values found on both sides
    gated: int = 0  # of those, values a rule was applied to
    regressions: list[str] = field(default_factory=list)
    value: float | None = None  # the baseline's headline, when it is the same metric
    metric: str | None = None  # the baseline's headline metric
    changed: dict[str, bool] = field(default_factory=dict)  # model, data, settings
    rules: list[str] = field(default_factory=list)  # the rules that gated a value of it

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.baseline,
            "status": self.status,
            "reasons": self.reasons,
            "compared_values": self.compared,
            "gated_values": self.gated,
            "value": self.value,
            "metric": self.metric,
            "model_changed": self.changed.get("model", False),
            "data_changed": self.changed.get("data", False),
            "settings_changed": self.changed.get("settings", False),
            "rules": self.rules,
        }


def rule_matches(rule: Rule, record: dict[str, Any], value: GatedValue) -> bool:
    """A rule's key names the value's metric, the check's type, its name (a glob pattern) or *."""
    if rule.key in COST_KEYS:
        return False
    check = str(record.get("check") or "")
    return rule.key in ("*", value.metric, record.get("type")) or fnmatch.fnmatchcase(
        check, rule.key
    )


def gated_of(record: dict[str, Any]) -> list[GatedValue]:
    """A results record's gated values: its `gated` list, or (a file written before the list
    existed) the values its check type's details model declares; [] when neither can be read."""
    found = record.get("gated")
    if isinstance(found, list):
        try:
            return [GatedValue.model_validate(_without_label(item)) for item in found]
        except ValueError:
            return []
    from robustness_checks.results import record_result

    result = record_result(record)
    return [] if result is None else result.gated_values()


def _without_label(item: Any) -> Any:
    return {k: v for k, v in item.items() if k != "label"} if isinstance(item, dict) else item


class Comparator:
    """A baseline document and the rules that gate against it."""

    def __init__(self, document: dict[str, Any], rules: Sequence[Rule], strict: bool = False):
        self.name = str(document.get("baseline") or "")
        self.rules = list(rules)
        self.strict = strict
        self.records: dict[str, dict[str, Any]] = {}
        for record in document["results"]:
            self.records.setdefault(record_id(record), record)

    def baseline_for(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The baseline record of the same check: the same id, else the same check name in the
        spec file whose path is the same from the deepest common folder (so another --rootdir,
        which changes node ids, still compares every check)."""
        exact = self.records.get(record_id(record))
        if exact is not None:
            return exact
        spec, check = record.get("spec") or "", record.get("check")
        candidates = [
            before
            for before in self.records.values()
            if before.get("check") == check and same_file(before.get("spec") or "", spec)
        ]
        return candidates[0] if len(candidates) == 1 else None

    def judge(self, record: dict[str, Any]) -> Comparison:
        """Compare `record` with its baseline record under every rule."""
        before = self.baseline_for(record)
        if before is None:
            return Comparison(self.name, "not in baseline")
        found = Comparison(self.name, "compared")
        found.metric = str(before.get("metric"))
        if before.get("metric") == record.get("metric") and _finite(before.get("value")):
            found.value = float(before["value"])
        found.reasons, found.changed = self._not_comparable(record, before)
        if found.reasons:
            found.status = "not comparable"
            if self.strict:
                found.regressions.append(
                    f"not comparable with baseline {self.name!r}: {'; '.join(found.reasons)} "
                    "(--robustness-compare-strict fails it)"
                )
            if found.changed.get("data"):
                return found
        else:
            self._compare_values(record, before, found)
        found.regressions += self._cost(record, before)
        return found

    def _not_comparable(
        self, record: dict[str, Any], before: dict[str, Any]
    ) -> tuple[list[str], dict[str, bool]]:
        reasons = []
        changed = {"model": False, "data": False, "settings": False}
        if before.get("outcome") in ("error", "skipped") or not _finite(before.get("value")):
            why = before.get("error") or f"its outcome was {before.get('outcome')}"
            reasons.append(f"the baseline holds no value for it ({why})")
        now_prints = Fingerprints.from_json(record.get("fingerprints"))
        old_prints = Fingerprints.from_json(before.get("fingerprints"))
        if now_prints is None or old_prints is None:
            side = "the baseline" if old_prints is None else "this run"
            reasons.append(
                f"{side} has no fingerprints of model, data and settings, so a change of data or "
                "settings could not be seen"
            )
        else:
            changed = {
                "model": now_prints.model != old_prints.model,
                "data": now_prints.data != old_prints.data,
                "settings": now_prints.check != old_prints.check,
            }
            if changed["data"]:
                reasons.append("the data differs from the baseline's (another data set or limit)")
            if changed["settings"]:
                changed["settings"], reason = self._settings_differ(record, before)
                reasons += [reason] if reason else []
        return reasons, changed

    def _settings_differ(self, record: dict[str, Any], before: dict[str, Any]) -> tuple[bool, str]:
        """Whether settings fingerprints that differ mean other settings, and the reason that
        names them. Both records' `settings` decide when they can be read: a change of location
        only (a spec moved with its files, a path hashed by an earlier version) or a field added
        since at its default is no change."""
        changes, why = settings_changes(record, before)
        if changes is None:
            return True, (
                f"settings differ from baseline {self.name!r} (the check's fields, the spec's "
                f"bounds, precision or model output, or the seed, decision or confidence); "
                f"which ones cannot be said: {why}"
            )
        if not changes:
            return False, ""
        listed = ", ".join(change.text() for change in changes)
        return True, f"settings differ from baseline {self.name!r}: {listed}"

    def _compare_values(
        self, record: dict[str, Any], before: dict[str, Any], found: Comparison
    ) -> None:
        old = {value.label: value for value in gated_of(before)}
        for value in gated_of(record):
            previous = old.get(value.label)
            if previous is None or not (_finite(value.value) and _finite(previous.value)):
                continue
            found.compared += 1
            rules = [rule for rule in self.rules if rule_matches(rule, record, value)]
            if rules:
                found.gated += 1
            found.rules += [rule.text for rule in rules if rule.text not in found.rules]
            for rule in rules:
                message = regressed(value, previous, rule, self.name)
                if message:
                    found.regressions.append(message)

    def _cost(self, record: dict[str, Any], before: dict[str, Any]) -> list[str]:
        """Regressions of evaluations and wall time (comparable whatever else changed)."""
        messages = []
        for key in COST_KEYS:
            for rule in (r for r in self.rules if r.key == key):
                now, old = record.get(key), before.get(key)
                if not (_finite(now) and _finite(old)):
                    continue
                if key == "seconds" and now < SECONDS_FLOOR:
                    continue
                limit = allowed(rule, float(old), lower_better=True)
                if now > limit and not math.isclose(now, limit, rel_tol=1e-12):
                    messages.append(
                        f"{key} rose from {format_number(old)} in baseline {self.name!r} to "
                        f"{format_number(now)}; {rule.text} allows at most {format_number(limit)}"
                    )
        return messages

    def coverage(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        """How much of the run was compared (from the results' own comparisons, which under
        xdist were made in the workers): for the terminal summary and the JSON."""
        status = {record_id(r): (r.get("baseline") or {}).get("status") for r in results}
        gated = {record_id(r): (r.get("baseline") or {}).get("gated_values") or 0 for r in results}
        compared = [key for key, found in status.items() if found == "compared"]
        matched = {
            record_id(before)
            for r in results
            if (before := self.baseline_for(r)) is not None and status[record_id(r)] is not None
        }
        return {
            "baseline": self.name,
            "checks": len(results),
            "compared": len(compared),
            "gated": sum(1 for key in compared if gated[key]),
            "not_comparable": sorted(k for k, found in status.items() if found == "not comparable"),
            "not_in_baseline": sorted(
                k for k, found in status.items() if found in (None, "not in baseline")
            ),
            "not_in_run": sorted(set(self.records) - matched),
        }


def regressed(now: GatedValue, before: GatedValue, rule: Rule, name: str) -> str | None:
    """A message when `now` is worse than `before` by more than `rule` allows."""
    assert now.value is not None and before.value is not None
    lower = now.lower_is_better
    if rule.kind == "significant":
        return _significantly_worse(now, before, name, rule)
    limit = allowed(rule, before.value, lower)
    worse = now.value > limit if lower else now.value < limit
    if not worse or math.isclose(now.value, limit, rel_tol=1e-12, abs_tol=1e-15):
        return None
    direction = "rose" if lower else "fell"
    return (
        f"{now.label} {direction} from {format_number(before.value)} in baseline {name!r} to "
        f"{format_number(now.value)}; {rule.text} allows "
        f"{'at most' if lower else 'at least'} {format_number(limit)}"
    )


def _significantly_worse(now: GatedValue, before: GatedValue, name: str, rule: Rule) -> str | None:
    """Worse than the baseline with the checks' confidence: the two intervals do not overlap,
    the candidate's on the worse side. (The results file keeps no per-example outcomes, so a
    paired test such as McNemar's is not possible; non-overlap of two intervals at level c is
    a test at a level stricter than 1 - c, so this gate rarely flakes.)"""
    if now.ci is None or before.ci is None:
        return None
    worse = now.ci[0] > before.ci[1] if now.lower_is_better else now.ci[1] < before.ci[0]
    if not worse:
        return None
    direction = "rose" if now.lower_is_better else "fell"
    return (
        f"{now.label} {direction} significantly from {format_number(before.value)} (CI "
        f"{format_number(before.ci[0])} to {format_number(before.ci[1])}) in baseline {name!r} "
        f"to {format_number(now.value)} (CI {format_number(now.ci[0])} to "
        f"{format_number(now.ci[1])}); {rule.text}"
    )


def allowed(rule: Rule, before: float, lower_better: bool) -> float:
    """The worst value `rule` allows after `before`."""
    if rule.kind == "absolute":
        return before + rule.amount if lower_better else before - rule.amount
    if rule.kind == "relative":
        return before * (1 + rule.amount) if lower_better else before * (1 - rule.amount)
    return before * rule.amount if lower_better else before / rule.amount


def record_id(record: dict[str, Any]) -> str:
    """A record's identity in a run: its `id`, else its node id."""
    return str(record.get("id") or record.get("nodeid"))


def same_file(one: str, other: str) -> bool:
    """Whether two spec paths (relative to different rootdirs) name the same file: one is the
    other's suffix by whole path components."""
    a, b = Path(one).parts, Path(other).parts
    shorter = min(len(a), len(b))
    return shorter > 0 and a[-shorter:] == b[-shorter:]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rule_keys(records: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """What rule keys can match in these records: types, check names, gated metrics."""
    found: dict[str, set[str]] = {"types": set(), "names": set(), "metrics": set()}
    for record in records:
        found["types"].add(str(record.get("type")))
        found["names"].add(str(record.get("check")))
        found["metrics"].update(value.metric for value in gated_of(record))
    return found
