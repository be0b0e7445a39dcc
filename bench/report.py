"""`tripstream report` wall time on N generated trips: before (per-zone/per-hour views from scans of the per-trip
tables) vs after (from the cells of zone_hourly_stats), one run each, same emulator.

The tables are seeded directly, not through the pipeline: each trip is normalised, classified (the consumer's
`classify`) and its items written with BatchWriteItem; the cells are summed here from the same trips (what the
consumer's write side maintains) and put the same way. Times are of the report's code path (read, compute,
render to a null terminal), without process start.

    PYTHONPATH=src:tests python bench/report.py [--trips 100000]
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REAL_SAMPLE, deployed, encoded_trips, report, sample, timed

from tripstream.aws.dynamodb import WriteStats, to_item, write_items
from tripstream.cli.read import build_report as cli_build_report
from tripstream.infra.stack import stack_names
from tripstream.retry import Backoff
from tripstream.settings import (
    DURATION_TABLE,
    FARE_RATIO_TABLE,
    HIGH_VALUE_TABLE,
    ZONE_HOURLY_STATS_TABLE,
    Thresholds,
)
from tripstream.trips.analytics import classify
from tripstream.trips.records import decode_trip
from tripstream.views.console import render_console
from tripstream.views.report import build_report
from tripstream.views.stack_report import ReportOptions
from tripstream.views.tables import read_tables
from tripstream.views.zones import parse_zone_lookup

ZONES_CSV = REAL_SAMPLE.parent / "taxi_zone_lookup.csv"
COUNTS = ("trips", "high_value_trips", "short", "medium", "long")


def seed(clients: Any, trips: int) -> tuple[int, int]:
    """Write the per-trip items and the cells of `trips` generated trips; (items, cells) written."""
    cells: dict[tuple[str, str], dict[str, Decimal]] = {}

    def requests() -> Iterator[tuple[str, dict[str, Any]]]:
        for data, _ in encoded_trips(sample(trips)):
            trip = decode_trip(data)
            items = classify(trip, Thresholds())
            location = trip.get("pickup_location_id")
            key = (str(location) if location is not None else "unknown", str(trip["pickup_datetime"])[:13])
            cell = cells.setdefault(key, {name: Decimal(0) for name in (*COUNTS, "total_amount")})
            cell["trips"] += 1
            amount = trip.get("total_amount")
            cell["total_amount"] += Decimal(repr(amount)) if amount is not None else Decimal(0)
            for table, item in (
                (HIGH_VALUE_TABLE, items.high_value),
                (DURATION_TABLE, items.duration),
                (FARE_RATIO_TABLE, items.fare_ratio),
            ):
                if item is not None:
                    yield table, to_item(item)
            if items.high_value is not None:
                cell["high_value_trips"] += 1
            if items.duration is not None:
                cell[str(items.duration["duration_category"])] += 1

    stats = WriteStats()
    unwritten = write_items(clients.dynamodb, requests(), Backoff, stats, max_in_flight=4)
    assert not unwritten, f"{len(unwritten)} items not written"
    cell_items = [{"pickup_location_id": zone, "pickup_hour": hour, **values} for (zone, hour), values in cells.items()]
    for start in range(0, len(cell_items), 25):
        pending: dict[str, Any] = {
            ZONE_HOURLY_STATS_TABLE: [
                {"PutRequest": {"Item": to_item(item)}} for item in cell_items[start : start + 25]
            ]
        }
        while pending:
            pending = clients.dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return sum(stats.items_written.values()), len(cell_items)


def render(data: dict[str, Any]) -> None:
    from rich.console import Console

    Console(file=io.StringIO(), width=160).print(render_console(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trips", type=int, default=100_000)
    args = parser.parse_args()
    zones = str(ZONES_CSV) if ZONES_CSV.is_file() else "none"
    with deployed(shards=1, stack_name="bench-report") as bench:
        clients = bench.clients
        seed_seconds, (items, cells) = timed(lambda: seed(clients, args.trips))
        lookup = parse_zone_lookup(ZONES_CSV.read_bytes()) if ZONES_CSV.is_file() else None

        def before() -> dict[str, Any]:
            # What `report` did before the aggregates: every view, per zone and hour too, from the scans.
            names = stack_names(clients.cloudformation, "bench-report").tables
            data = build_report(read_tables(clients.dynamodb, names, segments=4), zones=lookup, tables=names)
            render(data)
            return data

        def after_views() -> dict[str, Any]:
            data = cli_build_report(clients, "bench-report", zones, "bench", ReportOptions(aggregates_only=True))
            render(data)
            return data

        def after_full() -> dict[str, Any]:
            data = cli_build_report(clients, "bench-report", zones, "bench", ReportOptions())
            render(data)
            return data

        before_s, old = timed(before)  # one run each
        views_s, views = timed(after_views)
        full_s, full = timed(after_full)
    report(
        "report",
        {
            "trips": args.trips,
            "seeded": "directly (normalise + classify + BatchWriteItem; cells summed here), not via the pipeline",
            "per_trip_items": items,
            "cells": cells,
            "seed_s": round(seed_seconds, 1),
            "before_scans_s": round(before_s, 2),
            "after_aggregates_only_s": round(views_s, 2),
            "after_full_report_s": round(full_s, 2),
            "speedup_zone_hour_views": round(before_s / views_s, 1) if views_s else None,
            "trips_in_cells": views["aggregates"]["trips"],
            "trips_in_per_trip_tables": old["totals"]["trips"],
            "full_report_has_both": full.get("aggregates") is not None and "totals" in full,
        },
    )


if __name__ == "__main__":
    main()
