"""Benchmark: concurrent consumers on the same busy zone_hourly_stats cells (conflicts, retries, trips/s).

A live stream carries trips in pickup order, and Kinesis spreads them over shards by `trip_id`, so every shard's
consumer writes the same busy (zone, hour) cells at the same time. Here 1, 4 and 16 consumers (threads, one per
"shard": the trips dealt round-robin after sorting by pickup) each run `pipeline.consumer.consume_records` on
their shard's batches, one after the other, as Lambda does; a batch whose trips stay uncounted after the retries
(`first_failed_sequence`) is delivered again from there.

The trips: a generated month (`tripstream.trips.generate`) folded into one day (dates rewritten, times and
durations kept), so a zone-hour holds tens of trips: the hot cells of a busy day's stream. Each consumer count gets
trips of its own (another seed), so markers never decide; after each run the cells must add up to every trip.

No emulator returns TransactionConflict (measured: 16 threads x 200 transactions on one item, DynamoDB Local 3.3
applied all 3,200, serialised; the embedded emulator serialises with one lock), so the conflicts are injected as
AWS documents them: `tests/support/faults.py` with `model_transaction_conflicts` cancels a transaction that touches
an item another transaction in flight holds (TransactionConflict at those actions, nothing applied).

Usage: PYTHONPATH=src .venv/bin/python bench/hot_cells.py [--trips 4000] [--consumers 1,4,16] [--batch 100]
       [--backend moto|dynamodb-local] [--no-conflicts]
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import deployed, dynamodb_backend, encoded_trips, one_day, report, stream_records, timed

from support.faults import FaultInjector, FaultPlan
from tripstream.aws.clients import AwsClients
from tripstream.pipeline.consumer import ConsumerResult, StreamRecord, consume_records
from tripstream.settings import Settings
from tripstream.trips.records import decode_trip

_TOTALS = threading.Lock()  # the consumers' shared counters


def shards(trips: int, seed: int, consumers: int) -> list[list[StreamRecord]]:
    """The trips in pickup order, dealt round-robin to `consumers` shards."""
    entries = encoded_trips(one_day(trips, seed))
    entries.sort(key=lambda entry: str(decode_trip(entry[0])["pickup_datetime"]))
    records = stream_records(entries)
    return [records[i::consumers] for i in range(consumers)]


def consume_shard(
    clients: AwsClients, settings: Settings, records: list[StreamRecord], batch: int, totals: dict[str, int]
) -> None:
    """One consumer: its shard's batches in order; a batch with a failure is delivered again from there."""
    start = 0
    while start < len(records):
        chunk = records[start : start + batch]
        result: ConsumerResult = consume_records(clients.dynamodb, clients.s3, settings, chunk)
        with _TOTALS:
            totals["retried"] += result.aggregates.calls_retried
            totals["transactions"] += result.aggregates.transactions
            totals["counted"] += result.aggregates.trips_counted
        if result.first_failed_sequence is None:
            start += len(chunk)
        else:
            totals["redelivered"] += 1
            start += next(i for i, r in enumerate(chunk) if r.sequence_number == result.first_failed_sequence)


def cell_trips(clients: AwsClients, table: str) -> int:
    pages = clients.dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="trips")
    return sum(int(item["trips"]["N"]) for page in pages for item in page["Items"])


def run(args: argparse.Namespace, dynamodb_url: str | None) -> None:
    counts = [int(n) for n in args.consumers.split(",")]
    with deployed(dynamodb_url=dynamodb_url) as bench:
        settings = bench.consumer_settings()
        injector = FaultInjector(FaultPlan(model_transaction_conflicts=not args.no_conflicts))
        injector.install(bench.handler_clients)
        figures: dict[str, Any] = {"trips_per_run": args.trips, "batch": args.batch, "backend": args.backend}
        counted_so_far = 0
        for seed, consumers in enumerate(counts, start=100):
            parts = shards(args.trips, seed, consumers)
            totals = {"retried": 0, "transactions": 0, "counted": 0, "redelivered": 0}
            before = injector.counts.transactions_conflicted
            threads = [
                threading.Thread(target=consume_shard, args=(bench.handler_clients, settings, p, args.batch, totals))
                for p in parts
            ]

            def go(threads: list[threading.Thread] = threads) -> None:
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()

            seconds, _ = timed(go)
            trips = sum(len(p) for p in parts)
            counted_so_far += trips
            exact = cell_trips(bench.clients, settings.zone_hourly_stats_table) == counted_so_far
            figures[f"consumers_{consumers}"] = {
                "trips_per_s": round(trips / seconds),
                "conflicts": injector.counts.transactions_conflicted - before,
                "retries": totals["retried"],
                "transactions": totals["transactions"],
                "trips_per_transaction": round(totals["counted"] / max(1, totals["transactions"]), 1),
                "batches_redelivered": totals["redelivered"],
                "cells_exact": exact,
            }
            print(f"  {consumers:>2} consumers: {figures[f'consumers_{consumers}']}", flush=True)
        injector.uninstall(bench.handler_clients)
    report("hot_cells", figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=4_000, help="trips per consumer count")
    parser.add_argument("--consumers", default="1,4,16", help="consumer counts, comma-separated")
    parser.add_argument("--batch", type=int, default=100, help="records per consumer invocation (BatchSize)")
    parser.add_argument("--backend", choices=("moto", "dynamodb-local"), default="moto")
    parser.add_argument("--no-conflicts", action="store_true", help="the backend alone (no modelled conflicts)")
    args = parser.parse_args()
    with dynamodb_backend(args.backend) as dynamodb_url:
        run(args, dynamodb_url)


if __name__ == "__main__":
    main()
