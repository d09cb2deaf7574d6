"""Command line (`robustness-checks`, `python -m robustness_checks`): schema, validate, history."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    from robustness_checks import __version__

    parser = argparse.ArgumentParser(prog="python -m robustness_checks")
    parser.add_argument("--version", action="version", version=f"robustness-checks {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser(
        "schema", help="print the JSON Schema of *.robustness.yaml spec files (or of results)"
    )
    schema.add_argument(
        "--results",
        action="store_true",
        help="the schema of the results file (--robustness-json) and saved baselines instead",
    )
    validate = commands.add_parser("validate", help="validate spec files without running them")
    validate.add_argument("specs", nargs="+")
    validate.add_argument(
        "--cost",
        action="store_true",
        help="also load each spec's data and print each check's most forward passes",
    )
    history = commands.add_parser(
        "history", help="print the saved baselines and each check's value and cost over them"
    )
    history.add_argument(
        "--storage",
        metavar="DIR",
        default=".robustness",
        help="folder of saved baselines (default .robustness, as --robustness-storage)",
    )
    args = parser.parse_args(argv)
    if args.command == "history":
        return _history(args.storage)
    if args.command == "schema":
        from robustness_checks.checks.registry import CHECK_TYPES
        from robustness_checks.reporting.results_schema import results_json_schema
        from robustness_checks.spec.schema import spec_json_schema

        if args.results:
            found = results_json_schema()
        else:
            found = spec_json_schema([entry.params for entry in CHECK_TYPES.values()])
        json.dump(found, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from robustness_checks.errors import SpecError
    from robustness_checks.spec.parse import load_spec

    failures = 0
    for path in args.specs:
        try:
            document = load_spec(path)
        except SpecError as error:
            failures += 1
            print(error.render(), file=sys.stderr)
        except Exception as error:  # every file is reported, whatever went wrong with one
            failures += 1
            kind = type(error).__name__
            print(f"invalid robustness spec {path}: {kind}: {error}", file=sys.stderr)
        else:
            print(f"{path}: ok, {len(document.spec.checks)} checks")
            from robustness_checks.loading.summary import spec_summary

            for line in spec_summary(document.spec, document.base_dir):
                print(f"  {line}")
            if args.cost:
                for line in _cost_lines(document):
                    print(f"  {line}")
    return 1 if failures else 0


def _cost_lines(document: Any) -> list[str]:
    """Each check's most forward passes on the spec's data (loaded to count it)."""
    from robustness_checks.cost import check_cost
    from robustness_checks.loading.data import build_data

    try:
        examples = len(build_data(document.spec.data, document.base_dir))
    except Exception as error:  # the cost preview never hides the validation result
        return [f"note: no cost preview: the data did not load: {type(error).__name__}: {error}"]
    members = len(document.spec.model.ensemble or [])
    lines = [f"cost on {examples:,} examples (a random model's attacks cost more; see docs):"]
    for check in document.spec.checks:
        lines.append("  " + check_cost(check, examples, members).line(check.name, check.type))
    return lines


def _history(storage: str) -> int:
    """Print the history of the baselines in `storage`; 1 when there is none."""
    from robustness_checks.gating.history import history_lines, read_history

    runs, problems = read_history(storage)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not runs:
        print(
            f"no baselines saved in {storage}/; save one with pytest --robustness-save NAME",
            file=sys.stderr,
        )
        return 1
    print(f"{len(runs)} baselines in {storage}/, oldest first")
    for line in history_lines(runs):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
