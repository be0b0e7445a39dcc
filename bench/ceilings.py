"""The emulator's two ceilings (bare PutRecords loop, bare BatchWriteItem loop), measured on one emulator.

Used by bench/e2e.py and bench/scale.py so that their end-to-end figures are ratios against ceilings measured in the
same run. Run alone: .venv/bin/python bench/ceilings.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import deployed, encoded_trips, report, sample

from tripstream.aws.dynamodb import to_item
from tripstream.trips.analytics import classify
from tripstream.trips.records import decode_trip


def measure(rows: int = 10_000, shards: int = 2) -> dict[str, Any]:
    entries = encoded_trips(sample(rows))
    with deployed(shards=shards) as bench:
        kinesis, dynamodb = bench.clients.kinesis, bench.clients.dynamodb
        stream = bench.stack.stream_name
        settings = bench.consumer_settings()
        tables = (settings.high_value_table, settings.duration_table, settings.fare_ratio_table)
        items: list[tuple[str, dict[str, Any]]] = []
        for data, _ in entries:
            classified = classify(decode_trip(data), settings.thresholds)
            for table, item in zip(
                tables, (classified.high_value, classified.duration, classified.fare_ratio), strict=True
            ):
                if item is not None:
                    items.append((table, to_item(item)))
        kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": k} for d, k in entries[:500]])
        started = time.perf_counter()
        for start in range(0, len(entries), 500):
            batch = entries[start : start + 500]
            kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": k} for d, k in batch])
        put_rate = len(entries) / (time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(0, len(items), 25):
            request: dict[str, list[dict[str, Any]]] = {}
            for table, item in items[start : start + 25]:
                request.setdefault(table, []).append({"PutRequest": {"Item": item}})
            dynamodb.batch_write_item(RequestItems=request)  # type: ignore[arg-type]
        items_rate = len(items) / (time.perf_counter() - started)
    per_trip = len(items) / len(entries)
    return {
        "put_records_ceiling_records_per_s": round(put_rate),
        "batch_write_ceiling_items_per_s": round(items_rate),
        "items_per_trip": round(per_trip, 3),
        "batch_write_ceiling_trips_per_s": round(items_rate / per_trip),
    }


def ideal_seconds(ceilings: dict[str, Any], trips: int) -> float:
    """The sum of the two ceilings' times for `trips` trips."""
    return trips / ceilings["put_records_ceiling_records_per_s"] + trips / ceilings["batch_write_ceiling_trips_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    report("ceilings", measure(args.rows))


if __name__ == "__main__":
    main()
