"""Benchmark 3: transform cost per trip (parse + normalise + encode, no network) on one core, on a real sample.

Runs tripstream.trips.readers + normalise + records over the file (pinned to one CPU where possible) and reports
CPU µs per trip (process time) and wall µs per trip, best of --repeat runs.

Usage: .venv/bin/python bench/transform.py [FILE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REAL_SAMPLE, report, verdict

from tripstream.trips.normalise import RowError, TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.records import encode_trip


def transform(path: Path) -> tuple[int, int]:
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket="bench", source_key=path.name)
    sent = rejected = 0
    for row in trip_file.rows():
        if row.fields is None:
            rejected += 1
            continue
        try:
            trip = normaliser.normalise(row.fields, row.row_number)
        except RowError:
            rejected += 1
            continue
        encode_trip(trip)
        sent += 1
    return sent, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=REAL_SAMPLE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    best_cpu = best_wall = float("inf")
    sent = rejected = 0
    for _ in range(args.repeat):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent, rejected = transform(args.file)
        best_cpu = min(best_cpu, time.process_time() - cpu0)
        best_wall = min(best_wall, time.perf_counter() - wall0)
    rows = sent + rejected
    cpu_us = best_cpu / rows * 1e6
    report(
        "3 transform",
        {
            "file": args.file.name,
            "rows": rows,
            "rejected": rejected,
            "cpu_us_per_trip": round(cpu_us, 2),
            "wall_us_per_trip": round(best_wall / rows * 1e6, 2),
            "target": "<= 10 us (" + verdict(cpu_us, 10, at_most=True) + ")",
        },
    )


if __name__ == "__main__":
    main()
