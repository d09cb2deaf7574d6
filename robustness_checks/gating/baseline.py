"""Baselines for release gating: save a run by name, load one, and find regressions against it."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustness_checks.errors import RobustnessError
from robustness_checks.reporting.atomic import write_text_atomic
from robustness_checks.results import format_number

_RULE = re.compile(r"^(?P<key>[^:]+):(?P<op>[+x*])?(?P<amount>[0-9.eE+-]+)(?P<percent>%)?$")


class BaselineError(RobustnessError):
    """A baseline that is missing, unreadable or of another schema."""


def fingerprint_tensors(*tensors: Any) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes, in order."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint_model(model: Any) -> str:
    """sha256 of a model's state_dict (names, dtypes, shapes, values)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(fingerprint_tensors(tensor).encode())
    return digest.hexdigest()


def check_save_name(name: str) -> None:
    """A baseline name is a plain file name: letters, digits, '.', '_', '-' (no '..', no '/')."""
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name) or ".." in name:
        raise BaselineError(
            f"--robustness-save {name!r}: a baseline name may hold only letters, digits, '.', "
            "'_' and '-' (it becomes NAME.json in --robustness-storage)"
        )


def save_baseline(storage: Path, name: str, document: dict[str, Any]) -> Path:
    """Store a results document as `storage/NAME.json` (named, not keyed by machine)."""
    check_save_name(name)
    return write_text_atomic(
        storage / f"{name}.json", json.dumps({**document, "baseline": name}, indent=2) + "\n"
    )


def load_baseline(storage: Path, reference: str | None) -> dict[str, Any]:
    """The baseline named `reference` in `storage`, a path to one, or the newest saved (None)."""
    if reference is None:
        saved = sorted(storage.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not saved:
            raise BaselineError(
                f"no baseline saved in {storage}/ yet; save one with --robustness-save NAME"
            )
        path = saved[-1]
    else:
        path = Path(reference)
        if not (path.suffix == ".json" and path.is_file()):
            path = storage / f"{reference}.json"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in storage.glob("*.json"))) or "none"
        raise BaselineError(
            f"no baseline {reference!r}: {path} does not exist (saved in "
            f"{storage}/: {available}); save one with --robustness-save NAME"
        )
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BaselineError(f"baseline {path} is not a readable JSON file: {error}") from None
    if not isinstance(document, dict) or document.get("schema_version") != 1:
        raise BaselineError(f"baseline {path} is not a results file of schema_version 1")
    results = document.get("results")
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and isinstance(r.get("nodeid"), str) for r in results
    ):
        raise BaselineError(
            f"baseline {path} is malformed: 'results' must be a list of result objects, each "
            "with a 'nodeid'; save it again with --robustness-save NAME"
        )
    if not results:
        raise BaselineError(f"baseline {path} holds no results, so it can gate nothing")
    document.setdefault("baseline", path.stem)
    return document


@dataclass(frozen=True)
class Rule:
    """An allowed change: `key:+0.01` (absolute), `key:+2%` (relative) or `key:x2` (factor)."""

    key: str
    kind: str  # "absolute", "relative", "factor" or "significant"
    amount: float
    text: str

    def matches(self, record: dict[str, Any]) -> bool:
        return self.key in (record.get("metric"), record.get("check"), record.get("type"), "*")


def parse_rule(text: str) -> Rule:
    """A `--robustness-compare-fail` expression."""
    key, _, how = text.strip().rpartition(":")
    if how == "significant" and key:
        return Rule(key, "significant", 0.0, text)
    match = _RULE.match(text.strip())
    if not match:
        raise BaselineError(
            f"cannot read --robustness-compare-fail {text!r}: use KEY:+ABS (ece:+0.01), "
            "KEY:+PCT% (adversarial:+2%), KEY:xFACTOR (noise:x2) or KEY:significant, where KEY "
            "is a metric, check name, check type, evaluations, seconds or *"
        )
    try:
        amount = float(match["amount"])
    except ValueError:
        raise BaselineError(f"cannot read the amount in {text!r}") from None
    if match["op"] in ("x", "*"):
        if amount < 1:
            raise BaselineError(f"{text!r}: a factor must be at least 1")
        return Rule(match["key"], "factor", amount, text)
    if amount < 0:
        raise BaselineError(f"{text!r}: the allowed change must not be negative")
    kind = "relative" if match["percent"] else "absolute"
    return Rule(match["key"], kind, amount / 100 if match["percent"] else amount, text)


COST_KEYS = ("evaluations", "seconds")
SECONDS_FLOOR = 1.0  # wall time under this many seconds never fails a seconds:xF gate


Gated = tuple[str, float, bool | None, Any]  # metric, value, lower is better, interval


def gated_values(record: dict[str, Any]) -> dict[str, Gated]:
    """Every bound-bearing value of a result: label -> (metric, value, lower is better, ci).

    The headline value, and for adversarial checks both metrics at each eps, for noise checks
    each input's probability, so a regression at a second eps or input is not missed.
    """
    values: dict[str, Gated] = {}
    if record.get("value") is not None:
        values[str(record.get("metric"))] = (
            str(record.get("metric")),
            record["value"],
            _lower_is_better(record),
            record.get("ci"),
        )
    details = record.get("details") or {}
    for row in details.get("per_eps") or []:
        for metric, lower in (("adversarial_accuracy", False), ("accuracy_drop", True)):
            if row.get(metric) is not None:
                values[f"{metric} at eps={format_number(row['eps'])}"] = (
                    metric,
                    row[metric],
                    lower,
                    row.get(f"{metric}_ci"),
                )
    for row in details.get("inputs") or []:
        if isinstance(row, dict) and row.get("probability") is not None and "index" in row:
            values[f"probability of input {row['index']}"] = (
                "probability",
                row["probability"],
                True,
                row.get("ci"),
            )
    return values


def regression(record: dict[str, Any], baseline: dict[str, Any], rules: list[Rule]) -> str | None:
    """A message if `record` is worse than `baseline` by more than the first matching rule, for
    any of its bound-bearing values; `evaluations` and `seconds` rules gate the cost."""
    name = baseline.get("_name", "")
    messages = []
    for key in COST_KEYS:
        rule = next((r for r in rules if r.key == key), None)
        now, before = record.get(key), baseline.get(key)
        if rule is None or now is None or before is None:
            continue
        if key == "seconds" and now < SECONDS_FLOOR:
            continue
        limit = _limit(rule, float(before), lower_better=True)
        if now > limit and not math.isclose(now, limit, rel_tol=1e-12):
            messages.append(
                f"{key} rose from {format_number(before)} in baseline {name!r} to "
                f"{format_number(now)}; {rule.text} allows at most {format_number(limit)}"
            )
    rule = next((r for r in rules if r.key not in COST_KEYS and r.matches(record)), None)
    if rule is not None and record.get("metric") == baseline.get("metric"):
        old = gated_values(baseline)
        for label, (_, now, lower_better, ci) in gated_values(record).items():
            if label not in old or lower_better is None or now is None or old[label][1] is None:
                continue
            before = old[label][1]
            if rule.kind == "significant":
                message = _significantly_worse(label, now, ci, old[label], lower_better, name)
                if message:
                    messages.append(f"{message}; {rule.text}")
                continue
            limit = _limit(rule, before, lower_better)
            worse = now > limit if lower_better else now < limit
            if not worse or math.isclose(now, limit, rel_tol=1e-12, abs_tol=1e-15):
                continue
            direction = "rose" if lower_better else "fell"
            messages.append(
                f"{label} {direction} from {format_number(before)} in baseline {name!r} to "
                f"{format_number(now)}; {rule.text} allows "
                f"{'at most' if lower_better else 'at least'} {format_number(limit)}"
            )
    return "; ".join(messages) if messages else None


def _significantly_worse(
    label: str, now: float, ci: Any, old: Gated, lower_better: bool, name: str
) -> str | None:
    """Worse than the baseline with the checks' confidence: the two intervals do not overlap,
    the candidate's on the worse side. (The results file keeps no per-example outcomes, so a
    paired test such as McNemar's is not possible; non-overlap of two intervals at level c is
    a test at a level stricter than 1 - c, so this gate rarely flakes.)"""
    before, before_ci = old[1], old[3]
    if not ci or not before_ci or None in (*ci, *before_ci):
        return None
    worse = ci[0] > before_ci[1] if lower_better else ci[1] < before_ci[0]
    if not worse:
        return None
    direction = "rose" if lower_better else "fell"
    return (
        f"{label} {direction} significantly from {format_number(before)} (CI "
        f"{format_number(before_ci[0])} to {format_number(before_ci[1])}) in baseline {name!r} to "
        f"{format_number(now)} (CI {format_number(ci[0])} to {format_number(ci[1])})"
    )


def _limit(rule: Rule, before: float, lower_better: bool) -> float:
    if rule.kind == "absolute":
        return before + rule.amount if lower_better else before - rule.amount
    if rule.kind == "relative":
        return before * (1 + rule.amount) if lower_better else before * (1 - rule.amount)
    return before * rule.amount if lower_better else before / rule.amount


def _lower_is_better(record: dict[str, Any]) -> bool | None:
    """From the result's own bound, else from its check type's record of metric directions."""
    if record.get("comparison") == "<=":
        return True
    if record.get("comparison") == ">=":
        return False
    from robustness_checks.checks.registry import lower_is_better

    return lower_is_better(record.get("type"), record.get("metric"))
