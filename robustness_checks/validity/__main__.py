"""`python -m robustness_checks.validity decisions|gates`: the harness tables of the docs."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def installed(packages: list[Path]) -> Iterator[None]:
    """The check types of these package folders (each with a pyproject.toml declaring entry
    points of the robustness_checks.checks group) in the registry, as `pip install` would put
    them there, for the duration; the registry as before afterwards."""
    from robustness_checks.checks import registry

    with tempfile.TemporaryDirectory() as site:
        for package in packages:
            _install(package, Path(site))
        sys.path.insert(0, site)
        try:
            registry.reload()
            yield
        finally:
            sys.path.remove(site)
            for name in [
                m for m, mod in sys.modules.items() if site in str(getattr(mod, "__file__", ""))
            ]:
                del sys.modules[name]
            registry.reload()


def _install(package: Path, site: Path) -> None:
    """What pip leaves of a one-module package: the module and a dist-info with entry points."""
    import tomllib  # Python 3.11+, as this command

    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    points = project.get("entry-points", {}).get(registry_group(), {})
    for module in package.glob("*.py"):
        (site / module.name).write_text(module.read_text())
    name = project["name"].replace("-", "_")
    info = site / f"{name}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"[{registry_group()}]", *(f"{key} = {value}" for key, value in points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def registry_group() -> str:
    from robustness_checks.checks.registry import ENTRY_POINT_GROUP

    return ENTRY_POINT_GROUP


def example_packages() -> list[Path]:
    """The example check-type packages of the docs (docs/examples/*/pyproject.toml)."""
    root = Path(__file__).resolve().parents[2] / "docs" / "examples"
    return sorted(path.parent for path in root.glob("*/pyproject.toml"))


def decision_table(confidence: float = 0.95) -> list[str]:
    """The decision validity table: one row per check type, metric, n and population."""
    from robustness_checks.checks.registry import CHECK_TYPES
    from robustness_checks.validity.cases import limit, measure, problems

    lines = [
        "| type | metric | bound | n | population | point passes | strict passes | "
        "lenient passes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    found: list[str] = []
    for entry in CHECK_TYPES.values():
        for case in entry.validity_cases() or []:
            start = time.perf_counter()
            rates = measure(case, confidence=confidence)
            found += problems(rates, confidence)
            by_row: dict[tuple[int, str], dict[str, Any]] = {}
            for rate in rates:
                by_row.setdefault((rate.n, rate.truth), {})[rate.rule] = rate
            for (n, truth), rules in by_row.items():
                value = {"bound": case.bound, "violating": case.violating}.get(
                    truth, case.strict_at
                )
                cells = [
                    f"{rules[r].passed}/{rules[r].seeds}" for r in ("point", "strict", "lenient")
                ]
                lines.append(
                    f"| {case.check_type} | {case.metric} | {case.comparison} {case.bound:g} | "
                    f"{n} | {truth} ({value:g}) | " + " | ".join(cells) + " |"
                )
            print(f"{case.key}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    lines.append("")
    lines.append(
        f"Allowed: strict passes at the bound (or beyond it, for a witness rule) and lenient "
        f"failures at the bound in at most {limit(confidence, 200):.3f} of 200 seeds; every "
        f"rule fails the violating population in at least 80% of seeds."
    )
    lines.append("Problems: " + ("; ".join(found) if found else "none."))
    return lines


def gate_table() -> list[str]:
    """The gate validity table: one row per check type and run (the unchanged rerun, each
    regression), the rule forms tried on it and how many failed it as they should."""
    from robustness_checks.checks.registry import CHECK_TYPES
    from robustness_checks.validity.gate_cases import gate_outcomes

    lines = [
        "| type | run against the baseline | rule forms | failed the check | as they should |",
        "| --- | --- | --- | --- | --- |",
    ]
    wrong = []
    for entry in CHECK_TYPES.values():
        for case in entry.gate_case_list() or []:
            runs: dict[tuple[str, str], list[Any]] = {}
            for outcome in gate_outcomes(case):
                runs.setdefault((outcome.regression, outcome.metric), []).append(outcome)
            for (regression, metric), outcomes in runs.items():
                label = f"{regression} (worse {metric})" if metric else regression
                rules = ", ".join(f"`{o.rule}`" for o in outcomes)
                failed = sum(o.failed for o in outcomes)
                right = all(o.right for o in outcomes)
                lines.append(
                    f"| {case.check_type} | {label} | {rules} | {failed} of {len(outcomes)} | "
                    f"{'yes' if right else 'NO'} |"
                )
                wrong += [f"{o.case} {o.regression} {o.rule}" for o in outcomes if not o.right]
    lines.append("")
    lines.append("Wrong: " + ("; ".join(wrong) if wrong else "none."))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robustness_checks.validity")
    parser.add_argument("table", choices=("decisions", "gates"))
    parser.add_argument(
        "--without-examples",
        action="store_true",
        help="leave out the docs' example check types (installed for the run by default)",
    )
    args = parser.parse_args(argv)
    table = decision_table if args.table == "decisions" else gate_table
    packages = [] if args.without_examples else example_packages()
    with installed(packages):
        lines = table()
    print("\n".join(lines))
    return 0 if lines[-1].endswith("none.") else 1


if __name__ == "__main__":
    sys.exit(main())
