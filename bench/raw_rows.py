"""Benchmark: the stream's two formats through the consumer, on one real TLC file.

  canonical : tripstream's producer's records (one canonical trip each), the fast path
  raw rows  : the seed lab's producer's records (tests/support/lab_producer.py: csv.DictReader, its int/float
              conversions, json.dumps of the row), normalised by the consumer (trips/raw_rows.py)

Each path runs on a stack of its own (fresh emulator), 500-record invocations one after the other. Counts per table
and zone_hourly_stats are checked against the independent reference (tests/expected.py) of the file as each
producer sent it (the lab's conversions change the rows with empty converted cells: an empty passenger_count is 0).
Throughput is trips/s through the whole consumer (decode, classify, write, count), and of decoding alone (median of
--rounds).

Usage: .venv/bin/python bench/raw_rows.py [--file ../shared/data/tlc/yellow_2019-01_sample.csv] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import REAL_SAMPLE, consume_in_batches, deployed, encoded_trips, report, stream_records, timed

from expected import expected_aggregates, expected_for  # tests/expected.py, the independent reference
from support.lab_producer import is_lossy, lab_rows, write_as_sent
from tripstream.aws.dynamodb import scan_all
from tripstream.pipeline.consumer import StreamRecord
from tripstream.trips.normalise import RowError
from tripstream.trips.records import decode_record

TABLES = ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")


def through_consumer(records: list[StreamRecord], batch: int) -> dict[str, object]:
    """The records through the consumer on a fresh stack: trips/s, and what the tables then hold."""
    with deployed() as bench:
        settings = bench.consumer_settings()
        seconds, results = timed(lambda: consume_in_batches(bench.handler_clients, settings, records, batch))
        dynamodb = bench.clients.dynamodb
        counts = {table: len(scan_all(dynamodb, table)) for table in TABLES}
        cells = scan_all(dynamodb, "zone_hourly_stats")
    processed = sum(result.trips_processed for result in results)
    rejected = sum(sum(result.records_rejected.values()) for result in results)
    return {
        "trips_per_s": round(processed / seconds),
        "trips": processed,
        "rejected": rejected,
        "tables": counts,
        "zone_hourly_stats_trips": int(sum(Decimal(cell["trips"]) for cell in cells)),
        "zone_hourly_stats_cells": len(cells),
    }


def decoding_rate(records: list[StreamRecord], rounds: int) -> int:
    def decode_all() -> int:
        decoded = 0
        for record in records:
            assert record.data is not None
            try:
                decode_record(record.data, record.shard_id, record.sequence_number)
                decoded += 1
            except RowError:
                pass
        return decoded

    rates = []
    for _ in range(rounds):
        seconds, decoded = timed(decode_all)
        rates.append(decoded / seconds)
    return round(statistics.median(rates))


def reference(path: Path) -> dict[str, object]:
    expected = expected_for(path)
    cells = expected_aggregates(path)
    return {
        "trips": len(expected.trips),
        "tables": {table: len(items) for table, items in expected.tables.items()},
        "zone_hourly_stats_trips": int(sum(cell["trips"] for cell in cells.values())),
        "zone_hourly_stats_cells": len(cells),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=REAL_SAMPLE)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of decoding alone; the median is reported")
    parser.add_argument("--batch", type=int, default=500, help="records per consumer invocation")
    args = parser.parse_args()
    canonical = stream_records(encoded_trips(args.file))
    rows = list(lab_rows(args.file))
    raw = stream_records([(row.data.encode(), row.partition_key) for row in rows])
    changed = sum(1 for row in rows if any(is_lossy(c, t) for c, t in row.row.items() if c is not None))
    with tempfile.TemporaryDirectory() as folder:
        as_sent = write_as_sent(rows, Path(folder) / args.file.name)
        raw_reference = reference(as_sent)
    canonical_reference = reference(args.file)
    canonical_result = through_consumer(canonical, args.batch)
    raw_result = through_consumer(raw, args.batch)
    checks = {
        name: all(result[key] == want[key] for key in ("tables", "zone_hourly_stats_trips", "zone_hourly_stats_cells"))
        for name, result, want in (
            ("canonical", canonical_result, canonical_reference),
            ("raw_rows", raw_result, raw_reference),
        )
    }
    canonical_decode, raw_decode = decoding_rate(canonical, args.rounds), decoding_rate(raw, args.rounds)
    rate_raw = int(str(raw_result["trips_per_s"]))
    rate_canonical = int(str(canonical_result["trips_per_s"]))
    report(
        "raw rows vs canonical records",
        {
            "file": args.file.name,
            "rows": len(rows),
            "rows_the_labs_conversions_change": changed,
            "canonical": canonical_result,
            "canonical_reference": canonical_reference,
            "raw_rows": raw_result,
            "raw_rows_reference (the file as the lab sent it)": raw_reference,
            "equal_to_reference": checks,
            "consumer_trips_per_s canonical / raw rows": f"{rate_canonical} / {rate_raw}",
            "raw_rows_vs_canonical": round(rate_raw / rate_canonical, 2),
            "decode_only_trips_per_s canonical / raw rows": f"{canonical_decode} / {raw_decode}",
        },
    )


if __name__ == "__main__":
    main()
