"""Benchmark: the local Lambda service running the functions as Lambda runs them (issue 22).

On one embedded emulator (IAM enforced, each function with its role's credentials):
- cold and warm invocation time of each function on fresh environments (the producer on a 100-row file, the
  consumer on a one-record batch; then five warm), and the invocations of the throughput run,
- throughput of a generated file isolated vs in-process (`run_file`, the same stack; target >= 0.9x),
- the peak resident memory of each function's processes beside its MemorySize.

Usage: .venv/bin/python bench/lambda_service.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import deployed, report, sample, verdict

from tripstream.aws.clients import EMULATOR_CREDENTIALS
from tripstream.local.commands.run import run_file, upload_with_event
from tripstream.local.emulator.server import set_iam_enforcement
from tripstream.local.lambda_service.events import kinesis_event
from tripstream.local.lambda_service.functions import LocalFunctions


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms (median of {len(values)})" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    small, big = sample(100, seed=7), sample(args.rows)
    with deployed() as bench, tempfile.TemporaryDirectory(prefix="tripstream-bench-") as scratch:
        state_dir = Path(scratch)
        set_iam_enforcement(bench.emulator.endpoint_url, True)
        functions = LocalFunctions(
            bench.clients, bench.handler_clients, bench.stack, in_process=False, credentials=EMULATOR_CREDENTIALS
        )
        try:
            figures: dict[str, object] = {"rows": args.rows}
            runs = {}
            for mode, kwargs in (("in-process", {}), ("isolated", {"functions": functions})):
                started = time.monotonic()
                # One checkpoint folder: each run reads only what it sent.
                summary = run_file(
                    bench.clients,
                    bench.handler_clients,
                    bench.stack,
                    big,
                    key=f"bench/{mode}.csv",
                    state_dir=state_dir,
                    **kwargs,
                )
                seconds = time.monotonic() - started
                assert summary.ok and summary.records_consumed == args.rows, summary
                runs[mode] = args.rows / seconds
                figures[f"{mode} trips/s"] = f"{runs[mode]:.0f} ({seconds:.1f} s)"
            ratio = runs["isolated"] / runs["in-process"]
            figures["isolated / in-process"] = f"{ratio:.2f}x (target >= 0.9x: {verdict(ratio, 0.9)})"
            for function in (bench.stack.producer, bench.stack.consumer):
                stats = functions.pool(function).stats
                figures[f"{function.name} in the run: first batch / others"] = (
                    f"{_ms(stats.cold_seconds)} / {_ms(stats.warm_seconds)}, {stats.started} environment(s)"
                )
        finally:
            functions.close()
        # Start-up alone, on fresh environments: a 100-row file for the producer, a one-record batch for the consumer.
        fresh = LocalFunctions(
            bench.clients, bench.handler_clients, bench.stack, in_process=False, credentials=EMULATOR_CREDENTIALS
        )
        try:
            for attempt in range(6):
                event = upload_with_event(bench.clients, bench.stack.bucket, small, f"bench/small-{attempt}.csv")
                fresh.invoke_producer(event)
            consumer = fresh.consumer_handler()
            record = {"PartitionKey": "x", "SequenceNumber": "1", "Data": b'{"not": "a trip"}'}
            batch = kinesis_event(
                [record], shard_id="shardId-000000000000", stream_arn="arn", region="us-east-1", role_arn="arn"
            )
            for _ in range(6):
                consumer(batch, None)
            for function in (bench.stack.producer, bench.stack.consumer):
                stats = fresh.pool(function).stats
                figures[f"{function.name} cold"] = _ms(stats.cold_seconds)
                figures[f"{function.name} warm"] = _ms(stats.warm_seconds)
        finally:
            fresh.close()
        for function in (bench.stack.producer, bench.stack.consumer):
            stats = functions.pool(function).stats
            figures[f"{function.name} peak RSS"] = f"{stats.peak_rss_mb:.0f} MiB of MemorySize {function.memory_mb} MB"
    report("lambda_service", figures)


if __name__ == "__main__":
    main()
