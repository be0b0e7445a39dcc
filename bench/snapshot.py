"""`up --state-dir`: what one object arrival costs to save, at two sizes of the data held (issue 21 item 5).

One embedded emulator with the stack deployed; `high_value_trips` filled to each size with trip-like items; then
an object arrives (a 1 MB upload) and the snapshot is saved, as the live runtime does on every arrival. Printed per
size: the time of that save (version 2: only the new object is copied; the tables live in the emulator's kept store
and are not touched), and, for comparison, the time to read every item of the tables, which version 1 did (and then
wrote them all out) at each arrival. Printed, not asserted.

Usage: .venv/bin/python bench/snapshot.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import deployed, report, timed

from tripstream.aws.clients import AwsClients
from tripstream.aws.dynamodb import WriteStats, raw_items, write_items
from tripstream.local.commands.snapshot import save_snapshot
from tripstream.pipeline.producer import new_backoff
from tripstream.settings import Settings


def trip_item(number: int) -> dict[str, dict[str, str]]:
    return {
        "trip_id": {"S": f"{number:040x}"},
        "pickup_datetime": {"S": "2024-01-15T10:00:00"},
        "dropoff_datetime": {"S": "2024-01-15T10:31:00"},
        "total_amount": {"N": "72.35"},
        "fare_amount": {"N": "60.10"},
        "tip_amount": {"N": "8.25"},
        "pickup_location_id": {"S": "132"},
        "dropoff_location_id": {"S": "236"},
        "threshold": {"N": "50"},
    }


def every_item(clients: AwsClients, tables: list[str]) -> int:
    """Read every item of `tables` (as version 1 did at each arrival, before writing them all out); how many."""
    return sum(1 for name in tables for _ in raw_items(clients.dynamodb, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    settings = Settings()
    figures: dict[str, object] = {}
    with deployed() as bench, tempfile.TemporaryDirectory(prefix="bench-snapshot-") as folder:
        clients, stack, state = bench.clients, bench.stack, Path(folder)
        table = next(iter(stack.tables.values()))  # high_value_trips
        tables = list((stack.tables | stack.aggregate_tables).values())
        held = 0
        for arrival, size in enumerate(sorted(args.sizes)):
            requests = ((table, trip_item(number)) for number in range(held, size))
            write_items(clients.dynamodb, requests, new_backoff(settings), WriteStats(), settings.max_in_flight)
            held = size
            body = bytes(arrival % 256 for _ in range(1 << 20))
            clients.s3.put_object(Bucket=stack.bucket, Key=f"arrival-{arrival}.csv", Body=body)
            save_seconds, info = timed(lambda: save_snapshot(clients, stack, state))
            scan_seconds, scanned = timed(lambda: every_item(clients, tables))
            figures[f"items held {size:,}: save at an arrival (version 2)"] = (
                f"{save_seconds * 1000:.1f} ms, {info.downloaded} object(s), {info.downloaded_bytes:,} bytes copied"
            )
            figures[f"items held {size:,}: reading every item (what version 1 did at each arrival)"] = (
                f"{scan_seconds * 1000:.1f} ms for {scanned:,} items"
            )
    report("snapshot per arrival", figures)


if __name__ == "__main__":
    main()
