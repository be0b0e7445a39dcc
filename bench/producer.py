"""Benchmark 1: producer throughput (S3 object -> Kinesis) against the naive walkthrough and the emulator's ceiling.

All three run side by side on one emulator and one stream:
  producer : tripstream.pipeline.producer.produce_object on the whole generated object
  naive    : the specification walkthrough: read the whole object, csv.DictReader, json.dumps, one put_record per row
  ceiling  : a bare loop sending pre-encoded 500-record PutRecords batches, one call at a time

Each side runs --rounds times, interleaved with alternating order; the figures are medians.

Usage: .venv/bin/python bench/producer.py [--rows 20000] [--naive-rows 1000] [--shards 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import deployed, encoded_trips, report, sample, timed, verdict

from tripstream.pipeline.producer import produce_object


def bare_loop(kinesis, stream: str, entries: list[tuple[bytes, str]]) -> int:  # type: ignore[no-untyped-def]
    sent = 0
    for start in range(0, len(entries), 500):
        batch = entries[start : start + 500]
        response = kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": k} for d, k in batch])
        sent += len(batch) - response.get("FailedRecordCount", 0)
    return sent


def naive(s3, kinesis, stream: str, bucket: str, key: str, rows: int) -> int:  # type: ignore[no-untyped-def]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    sent = 0
    for index, row in enumerate(csv.DictReader(io.StringIO(body))):
        if index >= rows:
            break
        kinesis.put_record(StreamName=stream, Data=json.dumps(row).encode(), PartitionKey=str(index))
        sent += 1
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="trips in the generated object")
    parser.add_argument("--naive-rows", type=int, default=1_000, help="rows the naive loop sends (it is slow)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    args = parser.parse_args()
    path = sample(args.rows)
    entries = encoded_trips(path)
    with deployed(shards=args.shards) as bench:
        s3, kinesis, stream = bench.clients.s3, bench.clients.kinesis, bench.stack.stream_name
        bucket = bench.stack.bucket
        s3.upload_file(str(path), bucket, "taxi_trips.csv")
        settings = bench.producer_settings()
        bare_loop(kinesis, stream, entries[:1000])  # warm-up: connections, moto's lazy state
        producer_rates, ceiling_rates, naive_rates, calls = [], [], [], 0
        # Interleaved rounds (order alternating), so that load drift on a shared machine hits every side alike.
        for round_ in range(args.rounds):

            def ceiling() -> None:
                seconds, sent = timed(lambda: bare_loop(kinesis, stream, entries))
                ceiling_rates.append(sent / seconds)

            def producer() -> None:
                nonlocal calls
                seconds, result = timed(
                    lambda: produce_object(
                        bench.handler_clients.s3, bench.handler_clients.kinesis, settings, bucket, "taxi_trips.csv"
                    )
                )
                producer_rates.append(result.records_sent / seconds)
                calls = result.put_calls

            def naive_run() -> None:
                seconds, sent = timed(lambda: naive(s3, kinesis, stream, bucket, "taxi_trips.csv", args.naive_rows))
                naive_rates.append(sent / seconds)

            order = [ceiling, producer, naive_run]
            for step in order if round_ % 2 == 0 else reversed(order):
                step()
    producer_rate = statistics.median(producer_rates)
    ceiling_rate = statistics.median(ceiling_rates)
    naive_rate = statistics.median(naive_rates)
    report(
        "1 producer",
        {
            "rows": args.rows,
            "shards": args.shards,
            "producer_records_per_s": round(producer_rate),
            "naive_records_per_s": round(naive_rate),
            "ceiling_records_per_s": round(ceiling_rate),
            "vs_naive": round(producer_rate / naive_rate, 2),
            "vs_naive_target": ">= 15 (" + verdict(producer_rate / naive_rate, 15) + ")",
            "vs_ceiling": round(producer_rate / ceiling_rate, 2),
            "vs_ceiling_target": ">= 0.8 (" + verdict(producer_rate / ceiling_rate, 0.8) + ")",
            "rounds": args.rounds,
            "per_round_vs_ceiling": [round(p / c, 2) for p, c in zip(producer_rates, ceiling_rates, strict=True)],
            "per_round_vs_naive": [round(p / n, 1) for p, n in zip(producer_rates, naive_rates, strict=True)],
            "producer_put_calls_per_run": calls,
        },
    )


if __name__ == "__main__":
    main()
