"""Benchmark 7: scale on one machine, a generated 1,000,000-trip file end to end on the embedded default.

Runs the same path as `tripstream run` in this process (embedded Emulator, deploy_for_local_runtime,
local.pipeline.run_file) so that it can record when each consumer batch finished and read the emulator's peak
memory. Reports wall time, trips/s, peak RSS of this process (producer + local runtime + consumers) and of the
emulator process, checks that the tables hold exactly the items the trips produce, and compares the consumed rate
of the first and the last 10% of the trips (target: the rate does not fall).

Usage: .venv/bin/python bench/scale.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import bisect
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import deployed, peak_rss_mib, proc_peak_rss_mib, report, sample

from tripstream.local.commands.progress import Progress
from tripstream.local.commands.run import run_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    path = sample(args.rows)
    marks: list[tuple[float, int]] = []
    lock = threading.Lock()
    consumed = 0

    def on_consumed(count: int) -> None:
        nonlocal consumed
        with lock:
            consumed += count
            marks.append((time.perf_counter(), consumed))

    with deployed(stack_name="scale") as bench, tempfile.TemporaryDirectory() as state:
        started = time.perf_counter()
        summary = run_file(
            bench.clients,
            bench.handler_clients,
            bench.stack,
            path,
            key="taxi_trips.csv",
            state_dir=Path(state),
            progress=Progress(records_consumed=on_consumed),
        )
        wall = time.perf_counter() - started
        emulator_rss = proc_peak_rss_mib(bench.emulator_pid())

    def time_at(count: float) -> float:
        index = bisect.bisect_left([c for _, c in marks], count)
        return marks[min(index, len(marks) - 1)][0]

    tenth = args.rows / 10
    first_rate = tenth / (time_at(tenth) - started)
    last_rate = tenth / (time_at(args.rows) - time_at(args.rows - tenth))
    written = summary.items_written
    complete = summary.trips_processed == args.rows and all(
        summary.table_items.get(name) == count for name, count in written.items()
    )
    report(
        "7 scale",
        {
            "rows": args.rows,
            "ok": summary.ok,
            "complete": complete,
            "trips_processed": summary.trips_processed,
            "items_written": written,
            "table_items": summary.table_items,
            "wall_seconds": round(wall, 1),
            "trips_per_s": round(args.rows / wall),
            "first_10pct_trips_per_s": round(first_rate),
            "last_10pct_trips_per_s": round(last_rate),
            "last_vs_first": round(last_rate / first_rate, 2),
            "pipeline_process_peak_rss_mib": round(peak_rss_mib(), 1),
            "emulator_process_peak_rss_mib": emulator_rss and round(emulator_rss, 1),
        },
    )


if __name__ == "__main__":
    main()
