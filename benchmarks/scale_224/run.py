"""Every check type at 224 px, with time and peak memory: `python benchmarks/scale_224/run.py`.

It runs `pytest` on resnet18-224.robustness.yaml in a child process (as a user would), reads
each check's outcome, forward passes and seconds from the results JSON, takes the child's peak
resident memory from the kernel (`getrusage`), prints a table and writes results.json here.
`--threads` sets torch's CPU threads in the child (default: all).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE / "resnet18-224.robustness.yaml"


def run(threads: int | None, spec: Path = SPEC) -> dict:
    """One pytest run of `spec`; its checks, wall time and peak resident memory."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        command = [sys.executable, "-m", "pytest", str(spec), "-p", "no:cacheprovider"]
        command += ["-p", "no:xdist", f"--robustness-json={results}", "-q"]
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if not results.is_file():
            sys.exit(f"pytest wrote no results (rc {completed.returncode}):\n{completed.stdout}")
        checks = json.loads(results.read_text())["results"]
    return {
        "spec": str(spec.relative_to(HERE.parent.parent)),
        "threads": threads or os.cpu_count(),
        "examples": checks[0]["examples"] if checks else 0,
        "seconds": round(seconds, 1),
        "peak_rss_bytes": peak,
        "pytest_rc": completed.returncode,
        "checks": [
            {
                "name": c["check"],
                "type": c["type"],
                "outcome": c["outcome"],
                "forward_passes": c["evaluations"],
                "seconds": round(c["seconds"], 1),
            }
            for c in checks
        ],
    }


def table(record: dict) -> str:
    lines = ["| check | type | outcome | forward passes | seconds |", "|---|---|---|---:|---:|"]
    for c in record["checks"]:
        lines.append(
            f"| {c['name']} | {c['type']} | {c['outcome']} | {c['forward_passes']:,} | "
            f"{c['seconds']:.1f} |"
        )
    lines.append(
        f"\nwhole run: {record['seconds']:.0f} s, peak resident memory "
        f"{record['peak_rss_bytes'] / 2**30:.2f} GiB, {record['threads']} threads"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch CPU threads in the child")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    record = run(args.threads)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(table(record))


if __name__ == "__main__":
    main()
