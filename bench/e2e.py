"""Benchmark 6: end to end, a 100,000-trip generated file through `tripstream run` on the embedded default.

Measures the emulator's two ceilings first (bench/ceilings.py), then times the CLI as a user runs it
(`tripstream run FILE --json`, a fresh embedded emulator, the template's defaults). The figure is
wall time / (trips / PutRecords ceiling + trips / BatchWriteItem ceiling). Target: <= 1.5.
The CLI's own summary time (deploy excluded) is reported beside the wall time of the whole command.

Usage: .venv/bin/python bench/e2e.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, report, sample, verdict
from ceilings import ideal_seconds, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--ceiling-rows", type=int, default=10_000)
    args = parser.parse_args()
    path = sample(args.rows)
    ceilings = measure(args.ceiling_rows)
    command = [str(REPO / ".venv" / "bin" / "tripstream"), "run", str(path), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    try:
        summary = json.loads(completed.stdout[completed.stdout.index("{") :])
    except ValueError:
        summary = {"stdout": completed.stdout[-2000:], "stderr": completed.stderr[-2000:]}
    ideal = ideal_seconds(ceilings, args.rows)
    ratio = wall / ideal
    run_ratio = summary.get("seconds", wall) / ideal
    report(
        "6 end to end",
        {
            "rows": args.rows,
            "exit_code": completed.returncode,
            "wall_seconds": round(wall, 1),
            "run_seconds_excluding_deploy": round(summary.get("seconds", float("nan")), 1),
            "trips_per_s": round(args.rows / wall),
            "trips_processed": summary.get("trips_processed"),
            "table_items": summary.get("table_items"),
            **ceilings,
            "ideal_seconds": round(ideal, 1),
            "wall_vs_ideal": round(ratio, 2),
            "run_vs_ideal": round(run_ratio, 2),
            "target": "<= 1.5 (" + verdict(ratio, 1.5, at_most=True) + ")",
        },
    )


if __name__ == "__main__":
    main()
