"""What the delivery tests need around a deployed stack: what the tables must hold, what the stream holds, and
a clean slate between runs.

The expected items come from the file alone, through the pure functions (reader, normaliser, analytics) and no
AWS call: whatever faults a run went through, its tables must hold exactly these items, no more, no fewer.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripstream.aws.dynamodb import scan_all
from tripstream.aws.kinesis import get_records, list_shard_ids, shard_iterator
from tripstream.infra.template import load_template
from tripstream.settings import Settings
from tripstream.trips.analytics import classify
from tripstream.trips.normalise import RowError, TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from tripstream.aws.clients import AwsClients
    from tripstream.infra.stack import DeployedStack

TABLE_KEYS = ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")


@dataclass
class ExpectedRun:
    """What one file must produce."""

    rows: int  # data rows read (blank lines excepted)
    rejected: int  # rows the producer must refuse
    trips: Counter[str]  # trip_id -> accepted rows with it (two identical rows are one trip)
    items: dict[str, dict[str, dict[str, Any]]]  # table key (TABLE_KEYS) -> trip_id -> item

    @property
    def records(self) -> int:
        """Records the producer sends: one per accepted row."""
        return sum(self.trips.values())


def expected_run(path: Path, settings: Settings | None = None) -> ExpectedRun:
    settings = settings or Settings()
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header)
    rows = rejected = 0
    trips: Counter[str] = Counter()
    items: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in TABLE_KEYS}
    for row in trip_file.rows():
        rows += 1
        if row.error is not None or row.fields is None:
            rejected += 1
            continue
        try:
            trip = normaliser.normalise(row.fields, row.row_number)
        except RowError:
            rejected += 1
            continue
        trips[trip["trip_id"]] += 1
        classified = classify(trip, settings.thresholds)
        for name, item in zip(
            TABLE_KEYS, (classified.high_value, classified.duration, classified.fare_ratio), strict=True
        ):
            if item is not None:
                items[name][trip["trip_id"]] = item
    return ExpectedRun(rows=rows, rejected=rejected, trips=trips, items=items)


def table_contents(clients: AwsClients, stack: DeployedStack) -> dict[str, list[dict[str, Any]]]:
    """Every item of the three tables (by table key), as scanned."""
    return {name: scan_all(clients.dynamodb, stack.tables[name]) for name in TABLE_KEYS}


def stream_records(kinesis: KinesisClient, stream_name: str) -> dict[str, list[dict[str, Any]]]:
    """Every record of the stream, by shard, in order."""
    shards: dict[str, list[dict[str, Any]]] = {}
    for shard_id in list_shard_ids(kinesis, stream_name):
        records: list[dict[str, Any]] = []
        iterator: str | None = shard_iterator(kinesis, stream_name, shard_id, None)
        while iterator:
            page = get_records(kinesis, iterator, 10_000)
            records.extend(page.records)
            if not page.records and page.millis_behind_latest == 0:
                break
            iterator = page.next_iterator
        shards[shard_id] = records
    return shards


def reset_pipeline(clients: AwsClients, stack: DeployedStack) -> None:
    """Empty the deployed stack's stream, tables, on-failure queue and rejects, keeping the stack.

    The stream is re-created (a new incarnation: checkpoints of the old one no longer apply) and so are the
    tables (wherever DynamoDB runs), which is much faster than deploying a new stack for every test.
    """
    from tripstream.infra.table_creation import ensure_tables, table_definitions

    kinesis = clients.kinesis
    shards = len(list_shard_ids(kinesis, stack.stream_name))
    kinesis.delete_stream(StreamName=stack.stream_name, EnforceConsumerDeletion=True)
    _wait(lambda: stack.stream_name not in kinesis.list_streams()["StreamNames"], "the stream's deletion")
    kinesis.create_stream(StreamName=stack.stream_name, ShardCount=shards)
    _wait(
        lambda: (
            kinesis.describe_stream_summary(StreamName=stack.stream_name)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        ),
        "the stream",
    )
    all_tables = {**stack.tables, **stack.aggregate_tables}
    for table in all_tables.values():
        clients.dynamodb.delete_table(TableName=table)
    _wait(
        lambda: not set(all_tables.values()) & set(clients.dynamodb.list_tables()["TableNames"]),
        "the tables' deletion",
    )
    ensure_tables(clients.dynamodb, table_definitions(load_template(), stack.parameters))
    queue = stack.outputs.get("OnFailureQueueUrl")
    if queue:
        clients.sqs.purge_queue(QueueUrl=queue)
    prefix = stack.outputs.get("RejectsPrefix", "rejects/")
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            clients.s3.delete_object(Bucket=stack.bucket, Key=entry["Key"])


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass(frozen=True)
class ScratchResources:
    """A stream, three tables and a bucket of their own, for tests that drive the plain functions directly
    (no stack, so that many can share one emulator)."""

    name: str
    tables: tuple[str, str, str]
    settings: Settings
    aggregate_tables: tuple[str, str] = ("", "")  # zone_hourly_stats, its markers

    def delete(self, clients: AwsClients) -> None:
        clients.kinesis.delete_stream(StreamName=self.name)
        for table in (*self.tables, *self.aggregate_tables):
            if table:
                clients.dynamodb.delete_table(TableName=table)


def create_aggregate_tables(dynamodb: Any, stats: str, markers: str) -> None:
    """zone_hourly_stats and its markers, keyed as the template keys them."""
    dynamodb.create_table(
        TableName=stats,
        KeySchema=[
            {"AttributeName": "pickup_location_id", "KeyType": "HASH"},
            {"AttributeName": "pickup_hour", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pickup_location_id", "AttributeType": "S"},
            {"AttributeName": "pickup_hour", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName=markers,
        KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def create_scratch_resources(clients: AwsClients, name: str, **settings_changes: Any) -> ScratchResources:
    """Create them (2 shards; tables keyed like the template's, the aggregates' two included) and the Settings
    that point at them, with fast retries for tests; `settings_changes` override any setting."""
    tables = (f"{name}-high", f"{name}-duration", f"{name}-ratio")
    aggregate_tables = (f"{name}-zone-hourly", f"{name}-counted")
    create_aggregate_tables(clients.dynamodb, *aggregate_tables)
    for table in tables:
        clients.dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    clients.kinesis.create_stream(StreamName=name, ShardCount=2)
    clients.s3.create_bucket(Bucket=name)
    settings = Settings(
        stream_name=name,
        high_value_table=tables[0],
        duration_table=tables[1],
        fare_ratio_table=tables[2],
        zone_hourly_stats_table=aggregate_tables[0],
        counted_trips_table=aggregate_tables[1],
        rejects_bucket=name,
        retry_base_delay=0.001,
        retry_max_delay=0.01,
    ).with_changes(**settings_changes)
    return ScratchResources(name, tables, settings, aggregate_tables)
