"""`python -m robustness_checks.validity decisions|gates`: the harness tables of the docs."""

from __future__ import annotations

import argparse
import sys

from robustness_checks.validity.packages import example_packages, installed
from robustness_checks.validity.tables import decision_table, gate_table


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
