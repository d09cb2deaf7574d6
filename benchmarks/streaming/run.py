"""Peak memory of 50,000 streamed 224-px images: `python benchmarks/streaming/run.py`.

Runs pytest on stream-50k.robustness.yaml in a child process (a calibration and a PGD check over
all 50,000 images, 30 GB as float32), takes the child's peak resident memory from the kernel,
and measures the resident memory of `import robustness_checks` and of the plugin's imports in
fresh interpreters. Prints a table and writes results.json here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.scale_224.run import run, table

HERE = Path(__file__).resolve().parent
SPEC = HERE / "stream-50k.robustness.yaml"
IMPORTS = {
    "import robustness_checks": "import robustness_checks",
    "import torch": "import torch",
    "the plugin and every check type": (
        "import robustness_checks.plugin.hooks\n"
        "from robustness_checks.checks.registry import load_check_types\n"
        "load_check_types()"
    ),
}
MEASURE = "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"


def import_memory() -> dict[str, int]:
    """Peak resident bytes of a fresh interpreter after each set of imports."""
    found = {}
    for name, code in IMPORTS.items():
        out = subprocess.run([sys.executable, "-c", code + MEASURE], capture_output=True, text=True)
        found[name] = int(out.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch CPU threads in the child")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    record = run(args.threads, SPEC)
    record["imports_rss_bytes"] = import_memory()
    record["whole_inputs_bytes"] = record["examples"] * 3 * 224 * 224 * 4
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(table(record))
    print(f"inputs held whole would take {record['whole_inputs_bytes'] / 2**30:.1f} GiB")
    for name, value in record["imports_rss_bytes"].items():
        print(f"{name}: {value / 2**20:.0f} MiB resident")


if __name__ == "__main__":
    main()
