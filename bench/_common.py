"""Shared helpers of the benchmark scripts: one emulator + deployed stack, generated files, timing, output."""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime
from tripstream.local.emulator.server import Emulator
from tripstream.local.lambda_service.functions import handler_settings
from tripstream.pipeline.consumer import ConsumerResult, StreamRecord, consume_records
from tripstream.settings import Settings
from tripstream.trips.generate import HEADER, generate_rows, write_sample
from tripstream.trips.normalise import RowError, TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.records import encode_trip

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLE = REPO.parent / "shared" / "data" / "tlc" / "yellow_2019-01_sample.csv"
CACHE = Path(os.environ.get("TRIPSTREAM_BENCH_CACHE", "/tmp/tripstream-bench"))


@dataclass
class Bench:
    emulator: Emulator
    clients: AwsClients  # botocore standard retries (setup, bare loops)
    handler_clients: AwsClients  # retries off, as the handlers get them
    stack: DeployedStack

    def producer_settings(self, **changes: Any) -> Settings:
        return handler_settings(self.stack.producer).with_changes(**changes)

    def consumer_settings(self, **changes: Any) -> Settings:
        return handler_settings(self.stack.consumer).with_changes(**changes)

    def emulator_pid(self) -> int:
        process = self.emulator._process
        assert process is not None
        return process.pid


@contextmanager
def deployed(
    shards: int = 2, stack_name: str = "bench", dynamodb_url: str | None = None, **parameters: str
) -> Iterator[Bench]:
    """A fresh embedded emulator with the stack deployed for the local runtime (DynamoDB at `dynamodb_url`,
    e.g. a DynamoDB Local, when given)."""
    endpoints = {"dynamodb": dynamodb_url} if dynamodb_url else {}
    with Emulator() as emulator:
        url = emulator.endpoint_url
        clients = AwsClients.create(
            endpoint_url=url, region=REGION, credentials=EMULATOR_CREDENTIALS, service_endpoints=endpoints
        )
        handler_clients = clients.with_options(max_attempts=1)
        stack, _ = deploy_for_local_runtime(
            clients, stack_name=stack_name, parameters={"ShardCount": str(shards), **parameters}
        )
        yield Bench(emulator, clients, handler_clients, stack)


@contextmanager
def dynamodb_backend(backend: str) -> Iterator[str | None]:
    """Where DynamoDB is for `--backend`: None for the embedded emulator, a DynamoDB Local's URL (started here,
    stopped on exit) for "dynamodb-local"."""
    if backend != "dynamodb-local":
        yield None
        return
    from tripstream.local.emulator.dynamodb_local import DynamoDBLocal

    with DynamoDBLocal() as local:
        yield local.endpoint_url


def sample(rows: int, suffix: str = ".csv", seed: int = 42) -> Path:
    """A generated sample of `rows` trips, cached between runs."""
    path = CACHE / f"generated-{rows}-{seed}{suffix}"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_name("partial-" + path.name)
        write_sample(partial, rows, seed=seed)
        partial.replace(path)
    return path


def one_day(trips: int, seed: int, day: str = "2024-01-15") -> Path:
    """A generated month of `trips` folded into one `day` (dates rewritten; times and durations kept): every
    zone-hour of a busy day's stream holds tens of trips. Cached between runs."""
    path = CACHE / f"day-{day}-{trips}-{seed}.csv"
    if path.exists():
        return path
    pickup, dropoff = HEADER.index("tpep_pickup_datetime"), HEADER.index("tpep_dropoff_datetime")
    CACHE.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for row in generate_rows(trips, seed=seed):
            start = datetime.fromisoformat(row[pickup])
            moved = datetime.fromisoformat(f"{day} {row[pickup][11:]}")
            row[dropoff] = str(moved + (datetime.fromisoformat(row[dropoff]) - start))
            row[pickup] = str(moved)
            writer.writerow(row)
    return path


def encoded_trips(path: Path, bucket: str = "bench", limit: int | None = None) -> list[tuple[bytes, str]]:
    """(record data, partition key) of every accepted row of a local file."""
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket=bucket, source_key=path.name)
    out: list[tuple[bytes, str]] = []
    for row in trip_file.rows():
        if row.fields is None:
            continue
        try:
            trip = normaliser.normalise(row.fields, row.row_number)
        except RowError:
            continue
        out.append((encode_trip(trip), trip["trip_id"]))
        if limit is not None and len(out) >= limit:
            break
    return out


def stream_records(entries: list[tuple[bytes, str]]) -> list[StreamRecord]:
    """Encoded trips as the consumer gets them: one shard, sequence numbers from 1."""
    return [StreamRecord(str(i + 1), "shardId-000000000000", data, key) for i, (data, key) in enumerate(entries)]


def consume_in_batches(
    clients: AwsClients, settings: Settings, records: list[StreamRecord], batch: int
) -> list[ConsumerResult]:
    """The consumer on `records`, `batch` at a time, one batch after the other; every batch must succeed."""
    results = []
    for start in range(0, len(records), batch):
        result = consume_records(clients.dynamodb, clients.s3, settings, records[start : start + batch])
        assert result.first_failed_sequence is None
        results.append(result)
    return results


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_peak_rss_mib(pid: int) -> float | None:
    """VmHWM of another process (Linux), None if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
    }


def verdict(value: float, target: float, *, at_most: bool = False) -> str:
    ok = value <= target if at_most else value >= target
    return "met" if ok else "NOT met"


def report(name: str, figures: dict[str, Any]) -> None:
    """Print the figures readably and as one JSON line (bench/all collects those)."""
    print(f"== {name} ==")
    for key, value in figures.items():
        print(f"  {key}: {value}")
    print("BENCH_JSON " + json.dumps({"bench": name, "machine": machine(), **figures}, default=str))
    sys.stdout.flush()
