"""The consumer and the local event source mapping under injected faults, over real HTTP to the emulator:
per-record problems to rejects, unwritten items reported from the first failed record and re-delivered,
bisect on function errors, bounded retries then the on-failure queue, record age, durable checkpoints."""

from __future__ import annotations

import base64
import functools
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from support.faults import FaultInjector, FaultPlan
from support.harness import create_scratch_resources
from support.trips import canonical_trips, trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.aws.kinesis import list_shard_ids
from tripstream.aws.lambda_ import FunctionInfo
from tripstream.aws.s3 import read_json_lines
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers.dependencies import Dependencies
from tripstream.infra.template import EventSourceMappingSettings
from tripstream.local.lambda_service.checkpoints import CheckpointStore
from tripstream.local.lambda_service.event_source_mapping import EventSourceMapping, StreamInfo
from tripstream.pipeline.consumer import ConsumerResult, StreamRecord, consume_records
from tripstream.settings import Settings
from tripstream.trips.analytics import classify
from tripstream.trips.records import encode_trip

pytestmark = [pytest.mark.integration]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
FUNCTION = FunctionInfo(
    "lambda-kinesis-consumer",
    "arn:aws:lambda:us-east-1:123456789012:function:lambda-kinesis-consumer",
    "arn:aws:iam::123456789012:role/lambda-kinesis-streams-consumer-role",
    120,
    512,
    {},
)


# Generated files (tests/support/trips.py): the names stand for a seed each, so that tests meet different data.
TRIP_FILES = {
    "green_2019-01_sample.csv": 2019,
    "green_2014-01_sample.csv": 2014,
    "yellow_2013-01_sample_blankline.csv": 2013,
}


@functools.cache
def _trip_file(name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="tripstream-consumer-faults-"))
    return trips_file(folder / name, 500, seed=TRIP_FILES[name], blank_line="blankline" in name)


def sample_trips(name: str, count: int | None = None) -> list[dict[str, Any]]:
    """Canonical trips of a generated file (distinct trip_ids, in file order)."""
    return canonical_trips(_trip_file(name), count)


@dataclass
class Consumer:
    clients: AwsClients
    handler_clients: AwsClients
    name: str
    settings: Settings
    queue_url: str
    results: list[ConsumerResult] = field(default_factory=list)

    def inject(self, **plan: Any) -> FaultInjector:
        return FaultInjector(FaultPlan(**plan)).install(self.handler_clients)

    def expected(self, trips: list[dict[str, Any]]) -> dict[str, set[str]]:
        tables: dict[str, set[str]] = {table: set() for table in self.settings.table_names}
        for trip in trips:
            items = classify(trip, self.settings.thresholds)
            for table, item in zip(
                self.settings.table_names, (items.high_value, items.duration, items.fare_ratio), strict=True
            ):
                if item is not None:
                    tables[table].add(trip["trip_id"])
        return tables

    def tables(self) -> dict[str, list[str]]:
        """trip_ids per table, as a list: a duplicate would show twice."""
        return {
            table: sorted(item["trip_id"] for item in scan_all(self.clients.dynamodb, table))
            for table in self.settings.table_names
        }

    def put(self, trips: list[dict[str, Any]]) -> None:
        for start in range(0, len(trips), 500):
            chunk = trips[start : start + 500]
            response = self.clients.kinesis.put_records(
                StreamName=self.name,
                Records=[{"Data": encode_trip(trip), "PartitionKey": trip["trip_id"]} for trip in chunk],
            )
            assert response["FailedRecordCount"] == 0

    def mapping(
        self,
        handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None,
        *,
        checkpoints: CheckpointStore | None = None,
        **settings: Any,
    ) -> EventSourceMapping:
        summary = self.clients.kinesis.describe_stream_summary(StreamName=self.name)["StreamDescriptionSummary"]
        mapping_settings = EventSourceMappingSettings(
            BatchSize=100,
            MaximumBatchingWindowInSeconds=0,
            MaximumRetryAttempts=10,
            MaximumRecordAgeInSeconds=-1,
            BisectBatchOnFunctionError=True,
            ParallelizationFactor=1,
            StartingPosition="TRIM_HORIZON",
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )
        mapping_settings.update(settings)  # type: ignore[typeddict-item]
        deps = Dependencies(self.handler_clients, self.settings)
        return EventSourceMapping(
            self.clients,
            StreamInfo(self.name, summary["StreamARN"], summary["StreamCreationTimestamp"].isoformat()),
            handler or consumer_handler.make_handler(lambda: deps, self.results.append),
            FUNCTION,
            mapping_settings,
            checkpoints or CheckpointStore(None, self.name),
            on_failure_queue_url=self.queue_url,
            retry_delay=0.01,
        )

    def drain(self, mapping: EventSourceMapping, timeout: float = 120) -> None:
        mapping.start()
        try:
            mapping.producer_finished()
            assert mapping.wait_drained(timeout), "the mapping did not drain"
        finally:
            mapping.stop()

    def on_failure_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            answer = self.clients.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            if not answer.get("Messages"):
                return messages
            messages.extend(orjson.loads(m["Body"]) for m in answer["Messages"])


@pytest.fixture
def consumer(emulator_endpoint: str, aws_env: None) -> Iterator[Consumer]:
    name = f"consumer-faults-{uuid.uuid4().hex[:10]}"
    clients = AwsClients.create(endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    handler_clients = AwsClients.create(
        endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS, max_attempts=1
    )
    scratch = create_scratch_resources(clients, name, retry_max_attempts=8)
    queue_url = clients.sqs.create_queue(QueueName=name)["QueueUrl"]
    yield Consumer(clients, handler_clients, name, scratch.settings, queue_url)
    scratch.delete(clients)


def stream_records(trips: list[dict[str, Any]], shard: str = "shardId-000000000000") -> list[StreamRecord]:
    return [
        StreamRecord(
            sequence_number=str(1000 + n), shard_id=shard, data=encode_trip(trip), partition_key=trip["trip_id"]
        )
        for n, trip in enumerate(trips)
    ]


def as_lists(expected: dict[str, set[str]]) -> dict[str, list[str]]:
    return {table: sorted(ids) for table, ids in expected.items()}


# ---------------------------------------------------------------- consume_records on its own


def test_per_record_problems_go_to_rejects_and_count_as_processed(consumer: Consumer) -> None:
    good = sample_trips("green_2019-01_sample.csv", 3)
    records = stream_records(good)
    records[1:1] = [
        StreamRecord("1100", "shardId-000000000000", b"\xff not json", "k1"),
        StreamRecord("1101", "shardId-000000000000", orjson.dumps({**good[0], "schema_version": 99}), "k2"),
        StreamRecord("1102", "shardId-000000000000", None, "k3"),  # the event's base64 was broken
    ]
    result = consume_records(consumer.clients.dynamodb, consumer.clients.s3, consumer.settings, records)
    assert result.first_failed_sequence is None  # nothing to retry: retrying cannot fix these
    assert result.trips_processed == 3
    assert result.records_rejected == {"undecodable_record": 2, "invalid_record": 1}
    assert result.rejects_key is not None
    rejects = read_json_lines(consumer.clients.s3, consumer.name, result.rejects_key)
    assert [r["source"]["sequence_number"] for r in rejects] == ["1100", "1101", "1102"]
    assert consumer.tables() == as_lists(consumer.expected(good))


def test_unwritten_items_are_reported_from_the_first_failed_record(consumer: Consumer) -> None:
    trips = sample_trips("green_2019-01_sample.csv", 200)
    records = stream_records(trips)
    faults = consumer.inject(seed=3, unprocessed_items=0.05)
    no_retries = consumer.settings.with_changes(retry_max_attempts=1)
    result = consume_records(consumer.handler_clients.dynamodb, consumer.handler_clients.s3, no_retries, records)
    assert faults.counts.items_unprocessed > 0
    assert result.first_failed_sequence is not None
    first_failed = [r.sequence_number for r in records].index(result.first_failed_sequence)
    assert result.trips_processed == first_failed
    written = consumer.tables()
    expected_before = consumer.expected(trips[:first_failed])
    for table, ids in expected_before.items():
        assert ids <= set(written[table])  # every record before the failed one is complete
    failed_trip = trips[first_failed]["trip_id"]
    assert any(
        failed_trip in ids and failed_trip not in written[table]
        for table, ids in consumer.expected([trips[first_failed]]).items()
    )
    # Lambda re-delivers from the failed record; the writes are puts by trip_id, so nothing is doubled.
    again = consume_records(
        consumer.handler_clients.dynamodb, consumer.handler_clients.s3, consumer.settings, records[first_failed:]
    )
    assert again.first_failed_sequence is None
    assert consumer.tables() == as_lists(consumer.expected(trips))


def test_throttled_and_failed_writes_are_retried_with_backoff(consumer: Consumer) -> None:
    trips = sample_trips("green_2019-01_sample.csv", 300)
    faults = consumer.inject(seed=8, call_throttle=0.15, call_server_error=0.15, connection_reset=0.1)
    result = consume_records(
        consumer.handler_clients.dynamodb, consumer.handler_clients.s3, consumer.settings, stream_records(trips)
    )
    injected = sum(
        c.get("BatchWriteItem", 0)
        for c in (faults.counts.calls_throttled, faults.counts.calls_server_error, faults.counts.connections_reset)
    )
    assert injected > 0 and result.writes.calls_retried == injected
    assert result.first_failed_sequence is None
    assert consumer.tables() == as_lists(consumer.expected(trips))


def aws_sample_batch_with(trip: dict[str, Any]) -> dict[str, Any]:
    """The Kinesis batch of the AWS documentation (two records that are not trips), plus one trip after them."""
    event: dict[str, Any] = orjson.loads((FIXTURES / "kinesis_batch.json").read_bytes())
    last = event["Records"][-1]
    sequence = str(int(last["kinesis"]["sequenceNumber"]) + 1)
    event["Records"].append(
        {
            **last,
            "kinesis": {
                **last["kinesis"],
                "partitionKey": trip["trip_id"],
                "sequenceNumber": sequence,
                "data": base64.b64encode(encode_trip(trip)).decode(),
            },
            "eventID": f"shardId-000000000006:{sequence}",
        }
    )
    return event


def test_the_handler_on_a_real_lambda_event_rejects_what_is_not_a_trip(consumer: Consumer) -> None:
    (trip,) = sample_trips("green_2019-01_sample.csv", 1)
    handler = consumer_handler.make_handler(lambda: Dependencies(consumer.handler_clients, consumer.settings))
    event = aws_sample_batch_with(trip)
    assert handler(event, None) == {"batchItemFailures": []}
    (result_key,) = [
        o["Key"]
        for o in consumer.clients.s3.list_objects_v2(Bucket=consumer.name)["Contents"]
        if "consumer/" in o["Key"]
    ]
    rejects = read_json_lines(consumer.clients.s3, consumer.name, result_key)
    assert [r["source"]["sequence_number"] for r in rejects] == [
        r["kinesis"]["sequenceNumber"] for r in event["Records"][:2]
    ]
    assert {r["reason"] for r in rejects} == {"undecodable_record"}
    assert consumer.tables() == as_lists(consumer.expected([trip]))


def test_the_handler_reports_the_first_record_it_could_not_write(consumer: Consumer) -> None:
    (trip,) = sample_trips("green_2019-01_sample.csv", 1)
    consumer.inject(seed=1, unprocessed_items=1.0)
    deps = Dependencies(consumer.handler_clients, consumer.settings.with_changes(retry_max_attempts=3))
    event = aws_sample_batch_with(trip)
    response = consumer_handler.make_handler(lambda: deps)(event, None)
    # Exactly Lambda's partial batch response: re-deliver from the trip (the two records before it are done).
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][2]["kinesis"]["sequenceNumber"]}]}
    assert all(not ids for ids in consumer.tables().values())


# ---------------------------------------------------------------- through the event source mapping


def test_partial_failures_are_redelivered_from_the_first_failed_record(consumer: Consumer) -> None:
    trips = sample_trips("green_2014-01_sample.csv", 400)
    consumer.put(trips)
    faults = consumer.inject(seed=21, unprocessed_items=0.2)
    consumer.settings = consumer.settings.with_changes(retry_max_attempts=3)  # leave some items unwritten
    mapping = consumer.mapping()
    consumer.drain(mapping)
    assert faults.counts.items_unprocessed > 0
    assert mapping.stats.partial_failures > 0 and mapping.stats.records_to_on_failure == 0
    # Each record counted as processed once, although some were delivered several times.
    assert mapping.stats.records_delivered > len(trips)
    assert sum(r.trips_processed for r in consumer.results) == mapping.stats.records_done == len(trips)
    assert consumer.tables() == as_lists(consumer.expected(trips))


def test_a_consumer_crashing_mid_batch_is_retried_and_writes_each_item_once(consumer: Consumer) -> None:
    trips = sample_trips("yellow_2013-01_sample_blankline.csv", 400)
    consumer.put(trips)
    faults = consumer.inject(seed=1, consumer_crash=0.08)
    mapping = consumer.mapping()
    consumer.drain(mapping)
    # Two chunks of one invocation (written in parallel) may both crash: one function error.
    assert 0 < mapping.stats.function_errors <= faults.counts.consumer_crashes
    assert mapping.stats.records_to_on_failure == 0
    assert consumer.tables() == as_lists(consumer.expected(trips))


def test_a_poison_record_is_bisected_out_and_sent_to_the_on_failure_queue(consumer: Consumer) -> None:
    trips = sample_trips("green_2019-01_sample.csv", 300)
    poison = trips[137]["trip_id"]
    consumer.put(trips)
    deps = Dependencies(consumer.handler_clients, consumer.settings)
    inner = consumer_handler.make_handler(lambda: deps, consumer.results.append)
    batch_sizes: list[int] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            batch_sizes.append(len(event["Records"]))
        records = consumer_handler.records_from_event(event)
        if any(r.data is not None and orjson.loads(r.data)["trip_id"] == poison for r in records):
            raise RuntimeError("this record always breaks the function")
        return inner(event, context)

    mapping = consumer.mapping(handler, MaximumRetryAttempts=2, BatchSize=64)
    consumer.drain(mapping)
    # Bisected down to the poison record alone, which then had its retries and went to the queue.
    assert 1 in batch_sizes and 32 in batch_sizes
    assert mapping.stats.records_to_on_failure == 1 and mapping.stats.batches_to_on_failure == 1
    (message,) = consumer.on_failure_messages()
    info = message["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    shard_records = consumer.clients.kinesis.get_records(
        ShardIterator=consumer.clients.kinesis.get_shard_iterator(
            StreamName=consumer.name,
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"],
        Limit=1,
    )["Records"]
    assert orjson.loads(shard_records[0]["Data"])["trip_id"] == poison
    # Everything else is written; the poison trip nowhere.
    others = [trip for trip in trips if trip["trip_id"] != poison]
    assert consumer.tables() == as_lists(consumer.expected(others))


def test_records_older_than_the_maximum_age_go_to_the_on_failure_queue(consumer: Consumer) -> None:
    trips = sample_trips("green_2019-01_sample.csv", 50)
    consumer.put(trips)
    time.sleep(2.2)
    mapping = consumer.mapping(MaximumRecordAgeInSeconds=1)
    consumer.drain(mapping)
    assert mapping.stats.invocations == 0 and mapping.stats.records_to_on_failure == 50
    messages = consumer.on_failure_messages()
    assert {m["requestContext"]["condition"] for m in messages} == {"RecordAgeExceeded"}
    assert sum(m["KinesisBatchInfo"]["batchSize"] for m in messages) == 50
    assert all(not ids for ids in consumer.tables().values())


def test_the_checkpoint_is_durable_and_a_new_mapping_continues_from_it(consumer: Consumer, tmp_path: Path) -> None:
    trips = sample_trips("green_2019-01_sample.csv", 250)
    consumer.put(trips[:200])
    store = CheckpointStore(tmp_path, consumer.name)
    first = consumer.mapping(checkpoints=store)
    consumer.drain(first)
    assert first.stats.records_done == 200
    saved = sorted(path.name for path in (tmp_path / consumer.name).iterdir())
    assert saved == [f"{shard}.json" for shard in sorted(list_shard_ids(consumer.clients.kinesis, consumer.name))]
    # A new process (a new store object reading the same folder) delivers only what came after.
    consumer.put(trips[200:])
    second = consumer.mapping(checkpoints=CheckpointStore(tmp_path, consumer.name))
    consumer.drain(second)
    assert second.stats.records_delivered == second.stats.records_done == 50
    assert consumer.tables() == as_lists(consumer.expected(trips))


def test_the_next_batch_is_read_while_one_is_delivered_and_each_record_delivered_once(consumer: Consumer) -> None:
    trips = sample_trips("green_2014-01_sample.csv", 400)
    consumer.put(trips)
    reads: list[float] = []
    consumer.clients.kinesis.meta.events.register(
        "after-call.kinesis.GetRecords", lambda **_: reads.append(time.monotonic())
    )
    deps = Dependencies(consumer.handler_clients, consumer.settings)
    handle = consumer_handler.make_handler(lambda: deps, consumer.results.append)
    invocations: list[tuple[float, float]] = []

    def slow_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.monotonic()
        time.sleep(0.3)  # long enough for a read of the next batch to be seen during it
        response = handle(event, context)
        invocations.append((started, time.monotonic()))
        return response

    mapping = consumer.mapping(slow_handler, BatchSize=50)
    consumer.drain(mapping)
    assert len(invocations) > 2
    during = [any(start < read < end for read in reads) for start, end in invocations]
    # Every invocation but the last of each shard has the next read going on while it runs.
    assert sum(during) >= len(invocations) - len(list_shard_ids(consumer.clients.kinesis, consumer.name))
    assert mapping.stats.records_delivered == mapping.stats.records_done == len(trips)
    assert consumer.tables() == as_lists(consumer.expected(trips))
