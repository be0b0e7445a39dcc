"""Benchmark 2: consumer throughput (Kinesis records -> the three tables) against put_item per item and a bare loop.

All three run side by side on one emulator:
  consumer : pipeline.consumer.consume_records on 500-record batches (the mapping's BatchSize), one batch at a time
  naive    : classify each trip, then one put_item per item
  ceiling  : a bare loop of BatchWriteItem calls (25 pre-built items each), one call at a time
Rates are in trips/s; the ceiling's items/s is divided by the measured items per trip.

Each side runs --rounds times, interleaved with alternating order; the figures are medians.

Usage: .venv/bin/python bench/consumer.py [--rows 20000] [--naive-rows 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import consume_in_batches, deployed, encoded_trips, report, sample, stream_records, timed, verdict

from tripstream.aws.dynamodb import to_item
from tripstream.trips.analytics import classify
from tripstream.trips.records import decode_trip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--naive-rows", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--batch", type=int, default=500, help="records per consumer invocation")
    args = parser.parse_args()
    entries = encoded_trips(sample(args.rows))
    records = stream_records(entries)
    with deployed() as bench:
        settings = bench.consumer_settings()
        tables = (settings.high_value_table, settings.duration_table, settings.fare_ratio_table)
        items: list[tuple[str, dict]] = []  # type: ignore[type-arg]
        for data, _ in entries:
            classified = classify(decode_trip(data), settings.thresholds)
            for table, item in zip(
                tables, (classified.high_value, classified.duration, classified.fare_ratio), strict=True
            ):
                if item is not None:
                    items.append((table, to_item(item)))
        per_trip = len(items) / len(entries)
        dynamodb = bench.clients.dynamodb

        def bare() -> int:
            for start in range(0, len(items), 25):
                chunk = items[start : start + 25]
                request: dict[str, list[dict]] = {}  # type: ignore[type-arg]
                for table, item in chunk:
                    request.setdefault(table, []).append({"PutRequest": {"Item": item}})
                dynamodb.batch_write_item(RequestItems=request)
            return len(items)

        def consumer() -> int:
            results = consume_in_batches(bench.handler_clients, settings, records, args.batch)
            return sum(result.trips_processed for result in results)

        def naive() -> int:
            for data, _ in entries[: args.naive_rows]:
                classified = classify(decode_trip(data), settings.thresholds)
                for table, item in zip(
                    tables, (classified.high_value, classified.duration, classified.fare_ratio), strict=True
                ):
                    if item is not None:
                        dynamodb.put_item(TableName=table, Item=to_item(item))
            return min(args.naive_rows, len(entries))

        timed(lambda: dynamodb.batch_write_item(RequestItems={tables[0]: [{"PutRequest": {"Item": items[0][1]}}]}))
        ceiling_rates, consumer_rates, naive_rates = [], [], []
        # Interleaved rounds (order alternating), so that load drift on a shared machine hits every side alike.
        for round_ in range(args.rounds):
            steps = [(bare, ceiling_rates, per_trip), (consumer, consumer_rates, 1.0), (naive, naive_rates, 1.0)]
            for function, rates, divisor in steps if round_ % 2 == 0 else reversed(steps):
                seconds, count = timed(function)
                rates.append(count / divisor / seconds)
    ceiling = statistics.median(ceiling_rates)
    rate = statistics.median(consumer_rates)
    naive_rate = statistics.median(naive_rates)
    report(
        "2 consumer",
        {
            "rows": len(entries),
            "items_per_trip": round(per_trip, 3),
            "consumer_trips_per_s": round(rate),
            "naive_trips_per_s": round(naive_rate),
            "ceiling_items_per_s": round(ceiling * per_trip),
            "ceiling_trips_per_s": round(ceiling),
            "vs_naive": round(rate / naive_rate, 2),
            "vs_naive_target": ">= 10 (" + verdict(rate / naive_rate, 10) + ")",
            "vs_ceiling": round(rate / ceiling, 2),
            "vs_ceiling_target": ">= 0.8 (" + verdict(rate / ceiling, 0.8) + ")",
            "rounds": args.rounds,
            "per_round_vs_ceiling": [round(r / c, 2) for r, c in zip(consumer_rates, ceiling_rates, strict=True)],
            "per_round_vs_naive": [round(r / n, 1) for r, n in zip(consumer_rates, naive_rates, strict=True)],
        },
    )


if __name__ == "__main__":
    main()
