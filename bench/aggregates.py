"""Benchmark: the consumer with the zone_hourly_stats aggregates vs without, on one emulator, and the write units
per trip measured from the calls made.

  with    : pipeline.consumer.consume_records as deployed (per-trip tables + TransactWriteItems per batch)
  without : the same with ZONE_HOURLY_STATS_TABLE empty (the aggregates off)
Each side gets trips of its own in each round (a marker makes a trip seen before cost differently), rounds
interleaved with alternating order; the figures are medians.

Write units are counted from the requests sent (a botocore provide-client-params hook on the consumer's client): a
standard write of an item up to 1 KB costs 1 WCU (BatchWriteItem), a transactional write 2 WCU per item up to
1 KB (TransactWriteItems: each marker and each cell update); the largest item sent is printed to show they are
under 1 KB. `--order pickup` sorts the trips by pickup time first, as a live stream carries them (more trips
per zone-hour cell in a batch, so fewer cell updates per trip); `--order day` folds the month into one day first
(`_common.one_day`), so that every batch's trips share an hour, as at a real city's rate (1 M trips/day is ~40,000
an hour: a batch of 100 trips never spans more than an hour or two).

Usage: PYTHONPATH=src .venv/bin/python bench/aggregates.py [--rows 3000] [--rounds 3] [--batch 100] [--order file]
       [--backend moto|dynamodb-local]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    consume_in_batches,
    deployed,
    dynamodb_backend,
    encoded_trips,
    one_day,
    report,
    sample,
    stream_records,
    timed,
    verdict,
)

from tripstream.pipeline.consumer import StreamRecord
from tripstream.trips.records import decode_trip


class WriteCounter:
    """Items sent in BatchWriteItem (standard writes) and TransactWriteItems (transactional), retries included."""

    def __init__(self) -> None:
        self.standard = 0
        self.transactional = 0
        self.transactions = 0
        self.largest = 0
        self._lock = threading.Lock()

    def on_call(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            if model.name == "BatchWriteItem":
                for requests in params["RequestItems"].values():
                    self.standard += len(requests)
                    for request in requests:
                        self.largest = max(self.largest, _size(request["PutRequest"]["Item"]))
            elif model.name == "TransactWriteItems":
                self.transactions += 1
                self.transactional += len(params["TransactItems"])
                for action in params["TransactItems"]:
                    op = action.get("Put") or action.get("Update") or {}
                    self.largest = max(self.largest, _size(op.get("Item") or op.get("Key") or {}) + 100)


def _size(item: dict[str, Any]) -> int:
    """DynamoDB's item size, near enough: attribute names plus values as text."""
    return sum(len(name) + len(str(next(iter(value.values())))) for name, value in item.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000, help="trips per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100, help="records per consumer invocation (BatchSize)")
    parser.add_argument("--order", choices=("file", "pickup", "day"), default="file")
    parser.add_argument("--backend", choices=("moto", "dynamodb-local"), default="moto")
    args = parser.parse_args()
    with dynamodb_backend(args.backend) as dynamodb_url:
        run(args, dynamodb_url)


def run(args: argparse.Namespace, dynamodb_url: str | None) -> None:
    trips = args.rows * args.rounds * 2
    entries = encoded_trips(one_day(trips, seed=2026) if args.order == "day" else sample(trips, seed=2026))
    if args.order in ("pickup", "day"):
        entries.sort(key=lambda entry: str(decode_trip(entry[0])["pickup_datetime"]))
    records = stream_records(entries)
    slices = iter(records[i : i + args.rows] for i in range(0, len(records), args.rows))
    with deployed(dynamodb_url=dynamodb_url) as bench:
        on = bench.consumer_settings()
        off = on.with_changes(zone_hourly_stats_table="", counted_trips_table="")
        counters = {"with": WriteCounter(), "without": WriteCounter()}
        current: list[WriteCounter] = [counters["with"]]

        def on_call(**kwargs: Any) -> None:
            current[0].on_call(**kwargs)  # the side being measured now

        bench.handler_clients.dynamodb.meta.events.register(
            "provide-client-params.dynamodb", on_call, unique_id="bench-writes"
        )
        counted = {"with": 0, "without": 0}

        def consume(side: str, settings: Any, batch_records: list[StreamRecord]) -> int:
            current[0] = counters[side]
            results = consume_in_batches(bench.handler_clients, settings, batch_records, args.batch)
            counted[side] += sum(result.aggregates.trips_counted for result in results)
            return sum(result.trips_processed for result in results)

        rates: dict[str, list[float]] = {"with": [], "without": []}
        for round_ in range(args.rounds):
            sides = [("with", on), ("without", off)]
            for side, settings in sides if round_ % 2 == 0 else reversed(sides):
                part = next(slices)
                seconds, count = timed(lambda s=side, c=settings, p=part: consume(s, c, p))  # type: ignore[misc]
                rates[side].append(count / seconds)
    trips = args.rows * args.rounds
    with_, without = counters["with"], counters["without"]
    ratio = statistics.median(rates["with"]) / statistics.median(rates["without"])
    per_trip_standard = with_.standard / trips
    per_trip_transactional = 2 * with_.transactional / trips
    report(
        "aggregates",
        {
            "trips_per_side": trips,
            "batch": args.batch,
            "order": args.order,
            "backend": args.backend,
            "with_trips_per_s": round(statistics.median(rates["with"])),
            "without_trips_per_s": round(statistics.median(rates["without"])),
            "ratio": round(ratio, 2),
            "ratio_target": ">= 0.7 (" + verdict(ratio, 0.7) + ")",
            "per_round_ratio": [round(a / b, 2) for a, b in zip(rates["with"], rates["without"], strict=True)],
            "trips_counted": counted["with"],
            "transactions": with_.transactions,
            "trips_per_transaction": round(counted["with"] / max(1, with_.transactions), 1),
            "cell_updates_per_trip": round((with_.transactional - counted["with"]) / trips, 3),
            "wcu_per_trip_per_trip_tables": round(per_trip_standard, 3),
            "wcu_per_trip_aggregates": round(per_trip_transactional, 3),
            "wcu_per_trip_total": round(per_trip_standard + per_trip_transactional, 3),
            "wcu_per_trip_without": round(without.standard / trips, 3),
            "largest_item_bytes_approx": with_.largest,
        },
    )


if __name__ == "__main__":
    main()
