"""The retry loops of PutRecords (put_records, KinesisSender) and BatchWriteItem (batch_write, write_items) over
real HTTP to the emulator, the failures made by the fault-injection layer (support.faults); what was
sent is recorded by botocore hooks that only observe. Also: Backoff.progressed() in PutRecords, the consumer's
retries bounded by the invocation's remaining time, and the producer's dead-letter queue on the local runtime."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from support.faults import BATCH_WRITE_ITEM, PUT_RECORDS, FaultInjector, FaultPlan
from support.harness import create_scratch_resources, stream_records
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import WriteStats, batch_write, scan_all, write_items
from tripstream.aws.kinesis import MAX_BYTES_PER_CALL, KinesisSender, PutStats, RecordsNotSent, put_records
from tripstream.aws.lambda_ import FunctionInfo
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers import producer as producer_handler
from tripstream.handlers.dependencies import Dependencies
from tripstream.local.commands.run import upload_with_event
from tripstream.local.lambda_service.async_invocation import invoke_producer
from tripstream.local.lambda_service.context import LocalLambdaContext
from tripstream.pipeline.consumer import StreamRecord, consume_records
from tripstream.retry import Backoff, backoff_factory
from tripstream.settings import Settings
from tripstream.trips.analytics import classify
from tripstream.trips.generate import write_sample
from tripstream.trips.normalise import TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.records import encode_trip

pytestmark = pytest.mark.integration

PRODUCER = FunctionInfo(
    "lambda-kinesis-producer",
    "arn:aws:lambda:us-east-1:123456789012:function:lambda-kinesis-producer",
    "arn:aws:iam::123456789012:role/lambda-producer-kinesis-role",
    900,
    1024,
    {},
)


@dataclass
class Observer:
    """botocore hooks that only look: what each PutRecords / BatchWriteItem call sent, and what came back failed.

    Registered first, so they see every request the client sends, also those the fault layer then answers itself.
    """

    put_calls: list[list[tuple[str, int]]] = field(default_factory=list)  # per call: (partition key, data bytes)
    put_failed: list[list[str]] = field(default_factory=list)  # per answered call: keys with an ErrorCode
    write_calls: list[list[tuple[str, str]]] = field(default_factory=list)  # per call: (table, trip_id)
    write_unprocessed: list[list[tuple[str, str]]] = field(default_factory=list)
    _sent: threading.local = field(default_factory=threading.local)  # the keys of this thread's call in flight

    def install(self, clients: AwsClients) -> Observer:
        events_k, events_d = clients.kinesis.meta.events, clients.dynamodb.meta.events
        events_k.register_first(f"before-send.kinesis.{PUT_RECORDS}", self._put_sent)
        events_k.register_first(f"after-call.kinesis.{PUT_RECORDS}", self._put_answered)
        events_d.register_first(f"before-send.dynamodb.{BATCH_WRITE_ITEM}", self._write_sent)
        events_d.register_first(f"after-call.dynamodb.{BATCH_WRITE_ITEM}", self._write_answered)
        return self

    def _put_sent(self, request: Any, **_: Any) -> None:
        records = json.loads(request.body)["Records"]
        self._sent.keys = [r["PartitionKey"] for r in records]
        self.put_calls.append([(r["PartitionKey"], len(base64.b64decode(r["Data"]))) for r in records])

    def _put_answered(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Error" not in parsed:
            results = parsed["Records"]
            self.put_failed.append([k for k, r in zip(self._sent.keys, results, strict=True) if r.get("ErrorCode")])

    def _write_sent(self, request: Any, **_: Any) -> None:
        self.write_calls.append(_write_keys(json.loads(request.body)["RequestItems"]))

    def _write_answered(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Error" not in parsed:
            self.write_unprocessed.append(_write_keys(parsed.get("UnprocessedItems") or {}))

    def put_keys(self, call: int) -> list[str]:
        return [key for key, _ in self.put_calls[call]]


def _write_keys(requests: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    return [
        (table, request["PutRequest"]["Item"]["trip_id"]["S"])
        for table, table_requests in requests.items()
        for request in table_requests
    ]


@dataclass
class Loops:
    clients: AwsClients  # setting up and reading back: untouched
    handler_clients: AwsClients  # botocore retries off; observed, and faults injected here
    name: str
    tables: tuple[str, str, str]
    settings: Settings
    observer: Observer

    def inject(self, **plan: Any) -> FaultInjector:
        return FaultInjector(FaultPlan(**plan)).install(self.handler_clients)

    def backoff(self, **changes: Any) -> Backoff:
        return backoff_factory(self.settings.with_changes(**changes))()

    def stored(self) -> Counter[str]:
        return Counter(
            r["PartitionKey"] for records in stream_records(self.clients.kinesis, self.name).values() for r in records
        )

    def table(self, index: int = 0) -> list[str]:
        return sorted(item["trip_id"] for item in scan_all(self.clients.dynamodb, self.tables[index]))


@pytest.fixture
def loops(emulator_endpoint: str, aws_env: None) -> Iterator[Loops]:
    name = f"retry-loops-{uuid.uuid4().hex[:10]}"
    clients = AwsClients.create(endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    handler_clients = AwsClients.create(
        endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS, max_attempts=1
    )
    scratch = create_scratch_resources(clients, name, retry_max_attempts=10, continuation_mode="return")
    yield Loops(clients, handler_clients, name, scratch.tables, scratch.settings, Observer().install(handler_clients))
    scratch.delete(clients)


def entries(count: int, prefix: str = "key") -> list[tuple[bytes, str]]:
    return [(json.dumps({"n": n}).encode(), f"{prefix}-{n:05d}") for n in range(count)]


def keys_of(count: int, prefix: str = "key") -> Counter[str]:
    return Counter(f"{prefix}-{n:05d}" for n in range(count))


def items(table: str, count: int, prefix: str = "trip") -> list[tuple[str, dict[str, Any]]]:
    return [(table, {"trip_id": {"S": f"{prefix}-{n:03d}"}, "n": {"N": str(n)}}) for n in range(count)]


def _a_moment(**_: Any) -> None:
    time.sleep(0.2)


def send_all(sender: KinesisSender, batch: list[tuple[bytes, str]]) -> int:
    """Add every entry and flush; returns how many entries were handed to the sender before it raised (the one
    whose `add` raised too), or all."""
    handed = 0
    try:
        for data, key in batch:
            handed += 1
            sender.add(data, key)
        sender.flush()
    finally:
        sender.close()
        sender.handed = handed  # type: ignore[attr-defined]
    return handed


# ---------------------------------------------------------------- put_records


def test_failed_entries_are_retried_alone_and_stored_exactly_once(loops: Loops) -> None:
    faults = loops.inject(seed=3, put_entry_failure=0.3)
    stats = PutStats()
    put_records(loops.handler_clients.kinesis, loops.name, entries(300), loops.backoff(), stats)
    observed = loops.observer
    assert len(observed.put_calls) >= 3
    assert observed.put_keys(0) == list(keys_of(300))
    # Each retry carries exactly the entries the previous answer failed, in order: nothing else is sent again.
    for call in range(1, len(observed.put_calls)):
        assert observed.put_keys(call) == observed.put_failed[call - 1] != []
    assert observed.put_failed[-1] == []
    failed = sum(faults.counts.entries_failed.values())
    assert failed == sum(len(f) for f in observed.put_failed) > 0.25 * 300
    assert loops.stored() == keys_of(300)  # each once, none missing
    assert (stats.calls, stats.records_sent, stats.entries_retried, stats.calls_retried) == (
        len(observed.put_calls),
        300,
        failed,
        0,
    )


def test_throttled_failed_and_reset_calls_are_retried_whole(loops: Loops) -> None:
    faults = loops.inject(
        seed=6, call_throttle=0.2, call_server_error=0.2, connection_reset=0.2, operations=(PUT_RECORDS,)
    )
    stats = PutStats()
    batches = [entries(10, prefix=f"b{b:02d}") for b in range(15)]
    for batch in batches:
        before = len(loops.observer.put_calls)
        put_records(loops.handler_clients.kinesis, loops.name, batch, loops.backoff(), stats)
        calls = loops.observer.put_calls[before:]
        # Every attempt of a failed call is the whole call again.
        assert all([key for key, _ in call] == [key for _, key in batch] for call in calls)
    counts = faults.counts
    injected = {
        "throttled": counts.calls_throttled.get(PUT_RECORDS, 0),
        "5xx": counts.calls_server_error.get(PUT_RECORDS, 0),
        "reset": counts.connections_reset.get(PUT_RECORDS, 0),
    }
    assert all(injected.values()), injected
    assert stats.calls_retried == sum(injected.values())
    assert stats.calls == len(loops.observer.put_calls) == 15 + sum(injected.values())
    assert loops.stored() == sum((keys_of(10, prefix=f"b{b:02d}") for b in range(15)), Counter())


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ({"put_entry_failure": 1.0}, "ProvisionedThroughputExceededException|InternalFailure"),
        ({"call_throttle": 1.0}, "ProvisionedThroughputExceededException"),
        ({"call_server_error": 1.0}, "InternalFailure|ServiceUnavailable"),
    ],
    ids=["entries-failed", "call-throttled", "call-5xx"],
)
def test_exhausted_retries_raise_records_not_sent_with_the_exact_count(
    loops: Loops, plan: dict[str, Any], reason: str
) -> None:
    loops.inject(seed=1, **plan)
    with pytest.raises(RecordsNotSent, match=r"^7 records not sent") as raised:
        put_records(
            loops.handler_clients.kinesis, loops.name, entries(7), loops.backoff(retry_max_attempts=3), PutStats()
        )
    assert raised.value.count == 7
    assert any(code in raised.value.reason for code in reason.split("|"))
    assert len(loops.observer.put_calls) == 3  # RETRY_MAX_ATTEMPTS counts the first attempt
    assert sum(loops.stored().values()) == 0


def test_a_permanent_error_is_raised_at_once(loops: Loops) -> None:
    stats = PutStats()
    with pytest.raises(ClientError) as raised:
        put_records(loops.handler_clients.kinesis, f"{loops.name}-missing", entries(2), loops.backoff(), stats)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert len(loops.observer.put_calls) == 1 and stats.calls_retried == 0


# ---------------------------------------------------------------- KinesisSender


def test_the_sender_counts_every_record_not_sent_across_failing_calls(loops: Loops) -> None:
    loops.inject(seed=2, put_entry_failure=1.0)
    sender = KinesisSender(
        loops.handler_clients.kinesis, loops.name, lambda: loops.backoff(retry_max_attempts=2), max_in_flight=2
    )
    with pytest.raises(RecordsNotSent) as raised:
        send_all(sender, entries(1200))
    handed: int = sender.handed  # type: ignore[attr-defined]
    # Every record handed over is accounted for, the one being added when the failure was seen too (the first
    # failure may stop the sender before the last add).
    assert raised.value.count == handed >= 1000
    assert sum(loops.stored().values()) == 0


def test_the_sender_counts_exactly_what_is_missing_when_some_calls_got_through(loops: Loops) -> None:
    loops.inject(seed=8, put_entry_failure=0.5)
    # Each call waits a moment before it goes out, so that the sender has several in flight before the first answer
    # (with failures, and no retry left) stops it: on a fast emulator the first answer came back before the second
    # call was made.
    loops.handler_clients.kinesis.meta.events.register("before-call.kinesis.PutRecords", _a_moment)
    sender = KinesisSender(
        loops.handler_clients.kinesis, loops.name, lambda: loops.backoff(retry_max_attempts=1), max_in_flight=4
    )
    with pytest.raises(RecordsNotSent) as raised:
        send_all(sender, entries(2500))
    stored = loops.stored()
    handed: int = sender.handed  # type: ignore[attr-defined]
    assert max(stored.values()) == 1 and set(stored) <= set(keys_of(handed))
    assert raised.value.count + sum(stored.values()) == handed
    assert len(loops.observer.put_calls) >= 2  # several calls, each with failures, in one count


def test_the_entry_being_added_when_a_failure_is_seen_is_counted_not_sent(loops: Loops) -> None:
    """The first call fails (no retry left) and has answered before the second batch is full: the `add` that
    would start a third batch raises, and its entry, never handed to Kinesis, is counted with the rest, so that
    `count + sent` is every record the producer read."""
    loops.inject(seed=3, put_entry_failure=1.0)
    sender = KinesisSender(
        loops.handler_clients.kinesis, loops.name, lambda: loops.backoff(retry_max_attempts=1), max_in_flight=1
    )
    batch = entries(1001)
    for data, key in batch[:501]:  # the 501st sends the first 500
        sender.add(data, key)
    deadline = time.monotonic() + 30
    while sender.stats.calls < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the failed call's future is set just after its count
    for data, key in batch[501:1000]:
        sender.add(data, key)
    with pytest.raises(RecordsNotSent) as raised:
        sender.add(*batch[1000])
    sender.close()
    assert len(loops.observer.put_calls) == 1
    assert raised.value.count == 1001
    assert sum(loops.stored().values()) == 0


def test_the_sender_batches_by_500_records_and_by_5_mib(loops: Loops) -> None:
    sender = KinesisSender(loops.handler_clients.kinesis, loops.name, loops.backoff, max_in_flight=1)
    small = [(b"x" * 100, f"k{n:04d}") for n in range(1001)]
    big = [(b"y" * (1024 * 1024 - 10), f"b{n}") for n in range(6)]  # at most 4 fit in 5 MiB with their keys
    send_all(sender, small + big)
    sizes = [sum(len(key) + data for key, data in call) for call in loops.observer.put_calls]
    # 500 + 500 small ones; then the last small one and 4 big ones (a 5th would pass 5 MiB); then 2 big ones.
    assert [len(call) for call in loops.observer.put_calls] == [500, 500, 5, 2]
    assert all(size <= MAX_BYTES_PER_CALL for size in sizes)
    assert sizes[2] + len(big[4][0]) + len(big[4][1]) > MAX_BYTES_PER_CALL  # cut by size, not by count
    assert loops.stored() == Counter(key for _, key in small + big)
    assert sender.stats.records_sent == 1007


# ---------------------------------------------------------------- Backoff.progressed() in PutRecords


@pytest.mark.parametrize("seed", range(10))
def test_a_stream_that_keeps_accepting_part_of_each_call_is_not_given_up_on(loops: Loops, seed: int) -> None:
    """60% of the entries fail on every attempt, RETRY_MAX_ATTEMPTS=3: the budget counts records (2 resends each,
    shared by the batch), so the last few records, which can fail several calls in a row, are not given up on while
    the stream keeps accepting. Every record arrives, exactly once, whatever the seed (they once failed on 6 of 20
    seeds, when the attempts counted calls)."""
    faults = loops.inject(seed=seed, put_entry_failure=0.6)
    settings = Settings.from_env({"RETRY_MAX_ATTEMPTS": "3", "RETRY_BASE_DELAY": "0.001", "RETRY_MAX_DELAY": "0.005"})
    stats = PutStats()
    put_records(loops.handler_clients.kinesis, loops.name, entries(300), backoff_factory(settings)(), stats)
    assert loops.stored() == keys_of(300)
    assert sum(faults.counts.entries_failed.values()) > 300  # more failures than records: some failed repeatedly


def test_a_stream_that_accepts_nothing_is_given_up_on_after_exactly_the_attempts(loops: Loops) -> None:
    loops.inject(seed=4, put_entry_failure=1.0)
    settings = Settings.from_env({"RETRY_MAX_ATTEMPTS": "3", "RETRY_BASE_DELAY": "0.001", "RETRY_MAX_DELAY": "0.005"})
    with pytest.raises(RecordsNotSent) as raised:
        put_records(loops.handler_clients.kinesis, loops.name, entries(300), backoff_factory(settings)(), PutStats())
    assert raised.value.count == 300 and len(loops.observer.put_calls) == 3


def test_progress_is_still_bounded_by_max_elapsed(loops: Loops) -> None:
    loops.inject(seed=4, put_entry_failure=0.6)
    now = [0.0]

    def clock() -> float:  # every look at the clock is one second later: a slow, throttling stream
        now[0] += 1.0
        return now[0]

    backoff = Backoff(max_attempts=3, base_delay=0.001, max_delay=0.001, max_elapsed=4.5, clock=clock)
    with pytest.raises(RecordsNotSent) as raised:
        put_records(loops.handler_clients.kinesis, loops.name, entries(300), backoff, PutStats())
    calls = len(loops.observer.put_calls)
    assert 3 < calls <= 5  # past max_attempts thanks to progress, stopped by the time bound
    assert raised.value.count == 300 - sum(loops.stored().values()) > 0


# ---------------------------------------------------------------- batch_write / write_items


def test_unprocessed_items_are_sent_again_alone(loops: Loops) -> None:
    faults = loops.inject(seed=5, unprocessed_items=0.4)
    stats = WriteStats()
    table = loops.tables[0]
    assert batch_write(loops.handler_clients.dynamodb, items(table, 25), loops.backoff(), stats) == []
    observed = loops.observer
    assert len(observed.write_calls) >= 2
    assert observed.write_calls[0] == [(table, f"trip-{n:03d}") for n in range(25)]
    for call in range(1, len(observed.write_calls)):
        assert observed.write_calls[call] == observed.write_unprocessed[call - 1] != []
    assert observed.write_unprocessed[-1] == []
    assert loops.table() == [f"trip-{n:03d}" for n in range(25)]
    assert stats.unprocessed_retried == faults.counts.items_unprocessed > 0
    assert stats.items_written == {table: 25} and stats.calls == len(observed.write_calls)


def test_items_still_unprocessed_after_the_retries_are_returned_as_keys(loops: Loops) -> None:
    loops.inject(seed=1, unprocessed_items=1.0)
    table = loops.tables[0]
    left = batch_write(
        loops.handler_clients.dynamodb, items(table, 8), loops.backoff(retry_max_attempts=3), WriteStats()
    )
    assert left == [(table, f"trip-{n:03d}") for n in range(8)]
    assert len(loops.observer.write_calls) == 3 and loops.table() == []
    with pytest.raises(ValueError, match="at most 25"):
        batch_write(loops.handler_clients.dynamodb, items(table, 26), loops.backoff(), WriteStats())


def test_throttled_failed_and_reset_writes_are_retried_whole(loops: Loops) -> None:
    faults = loops.inject(
        seed=3, call_throttle=0.25, call_server_error=0.25, connection_reset=0.25, operations=(BATCH_WRITE_ITEM,)
    )
    stats = WriteStats()
    table = loops.tables[0]
    for chunk in range(8):
        before = len(loops.observer.write_calls)
        batch = items(table, 10, prefix=f"c{chunk}")
        assert batch_write(loops.handler_clients.dynamodb, batch, loops.backoff(), stats) == []
        expected = [(table, item["trip_id"]["S"]) for _, item in batch]
        assert all(call == expected for call in loops.observer.write_calls[before:])
    counts = faults.counts
    injected = [
        counts.calls_throttled.get(BATCH_WRITE_ITEM, 0),
        counts.calls_server_error.get(BATCH_WRITE_ITEM, 0),
        counts.connections_reset.get(BATCH_WRITE_ITEM, 0),
    ]
    assert all(injected), injected
    assert stats.calls_retried == sum(injected) and stats.calls == 8 + sum(injected)
    assert len(loops.table()) == 80


def test_write_items_splits_into_calls_of_25_and_writes_everything_once(loops: Loops) -> None:
    faults = loops.inject(seed=7, unprocessed_items=0.3, call_throttle=0.1, operations=(BATCH_WRITE_ITEM,))
    requests = items(loops.tables[0], 60) + items(loops.tables[1], 30)
    stats = WriteStats()
    assert write_items(loops.handler_clients.dynamodb, requests, loops.backoff, stats, max_in_flight=3) == []
    assert all(len(call) <= 25 for call in loops.observer.write_calls)
    seen: set[tuple[str, str]] = set()
    first_attempts = []  # calls of keys never sent before (a retry carries keys already sent)
    for call in loops.observer.write_calls:
        if not seen & set(call):
            first_attempts.append(len(call))
        seen |= set(call)
    assert sorted(first_attempts) == [15, 25, 25, 25]  # 90 requests: 25 + 25 + 25 + 15
    assert loops.table(0) == [f"trip-{n:03d}" for n in range(60)]
    assert loops.table(1) == [f"trip-{n:03d}" for n in range(30)]
    assert faults.counts.items_unprocessed > 0 and stats.items_written == {loops.tables[0]: 60, loops.tables[1]: 30}


# ---------------------------------------------------------------- duplicate keys in one BatchWriteItem


def duplicate_batch(table: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (table, {"trip_id": {"S": "same"}, "n": {"N": "1"}}),
        (table, {"trip_id": {"S": "other"}, "n": {"N": "2"}}),
        (table, {"trip_id": {"S": "same"}, "n": {"N": "3"}}),
    ]


def test_moto_accepts_duplicate_keys_in_one_write_which_dynamodb_refuses(loops: Loops) -> None:
    """moto lets the last request win; AWS answers ValidationException ("Provided list of item keys contains
    duplicates"). The fault layer's refuse_duplicate_keys applies DynamoDB's rule on moto, and the refusal is
    permanent: not retried."""
    table = loops.tables[0]
    assert batch_write(loops.handler_clients.dynamodb, duplicate_batch(table), loops.backoff(), WriteStats()) == []
    assert loops.table() == ["other", "same"]
    faults = loops.inject(refuse_duplicate_keys=True)
    with pytest.raises(ClientError) as raised:
        batch_write(loops.handler_clients.dynamodb, duplicate_batch(table), loops.backoff(), WriteStats())
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "duplicates" in raised.value.response["Error"]["Message"]
    assert faults.counts.calls_refused_duplicate_keys == 1 and len(loops.observer.write_calls) == 2


def test_dynamodb_local_refuses_duplicate_keys_in_one_write(dynamodb_local_endpoint: str, aws_env: None) -> None:
    """The rule the fault layer's refuse_duplicate_keys copies, seen on Amazon's own engine (skipped locally
    without Java 17+/npm, a failure with CI=true)."""
    clients = AwsClients.create(
        endpoint_url=dynamodb_local_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS, max_attempts=1
    )
    table = f"duplicates-{uuid.uuid4().hex[:10]}"
    clients.dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        with pytest.raises(ClientError) as raised:
            batch_write(clients.dynamodb, duplicate_batch(table), Backoff(), WriteStats())
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert "duplicates" in raised.value.response["Error"]["Message"]
    finally:
        clients.dynamodb.delete_table(TableName=table)


def generated_trips(tmp_path: Path, count: int, seed: int = 42) -> list[dict[str, Any]]:
    """Canonical trips of a generated sample (distinct trip_ids, in file order)."""
    path = write_sample(tmp_path / f"generated-{seed}.csv", count, seed=seed)
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket="b", source_key=path.name)
    trips: dict[str, dict[str, Any]] = {}
    for row in trip_file.rows():
        if row.fields is not None and row.error is None:
            trip = normaliser.normalise(row.fields, row.row_number)
            trips.setdefault(trip["trip_id"], trip)
    return list(trips.values())


def as_records(trips: list[dict[str, Any]]) -> list[StreamRecord]:
    return [
        StreamRecord(str(1000 + n), "shardId-000000000000", encode_trip(trip), trip["trip_id"])
        for n, trip in enumerate(trips)
    ]


def expected_tables(settings: Settings, trips: list[dict[str, Any]]) -> dict[str, list[str]]:
    tables: dict[str, set[str]] = {table: set() for table in settings.table_names}
    for trip in trips:
        classified = classify(trip, settings.thresholds)
        for table, item in zip(
            settings.table_names, (classified.high_value, classified.duration, classified.fare_ratio), strict=True
        ):
            if item is not None:
                tables[table].add(trip["trip_id"])
    return {table: sorted(ids) for table, ids in tables.items()}


def test_the_consumer_dedupes_one_trip_delivered_twice_in_a_batch(loops: Loops, tmp_path: Path) -> None:
    """A producer retry after a lost answer puts a trip into the stream twice; both copies can arrive in one
    batch. The consumer writes each key once per call, so DynamoDB's duplicate-key rule never refuses it."""
    trips = generated_trips(tmp_path, 40)
    repeated = [*trips[:30], *trips[5:15], *trips[30:], trips[0]]  # 10 copies in the middle, one at the end
    loops.inject(seed=9, refuse_duplicate_keys=True, unprocessed_items=0.2)
    result = consume_records(
        loops.handler_clients.dynamodb, loops.handler_clients.s3, loops.settings, as_records(repeated)
    )
    assert result.first_failed_sequence is None
    assert result.trips_processed == len(repeated)  # each delivered record is processed...
    tables = {table: loops.table(index) for index, table in enumerate(loops.tables)}
    assert tables == expected_tables(loops.settings, trips)  # ...and each trip's item written once
    for call in loops.observer.write_calls:
        assert len(call) == len(set(call))


# ---------------------------------------------------------------- the consumer's remaining time


def deadline_settings(loops: Loops) -> Settings:
    # Retries would go on for a minute: only the invocation's deadline can stop them in time.
    return loops.settings.with_changes(
        retry_max_attempts=100_000,
        retry_base_delay=0.005,
        retry_max_delay=0.01,
        retry_max_elapsed=60.0,
        consumer_deadline_margin_seconds=1.0,
    )


def consumer_context(timeout_seconds: float) -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name="lambda-kinesis-consumer",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:lambda-kinesis-consumer",
        timeout_seconds=timeout_seconds,
    )


def lambda_event(records: list[StreamRecord]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64.b64encode(r.data or b"").decode(),
                    "approximateArrivalTimestamp": time.time(),
                },
                "eventSource": "aws:kinesis",
                "eventID": f"{r.shard_id}:{r.sequence_number}",
            }
            for r in records
        ]
    }


def test_the_consumer_stops_retrying_before_its_deadline_and_reports_what_is_unwritten(
    loops: Loops, tmp_path: Path
) -> None:
    trips = generated_trips(tmp_path, 5)
    event = lambda_event(as_records(trips))
    loops.inject(seed=1, unprocessed_items=1.0)
    deps = Dependencies(loops.handler_clients, deadline_settings(loops))
    context = consumer_context(timeout_seconds=1.8)  # 0.8 s before the 1 s safety margin
    started = time.monotonic()
    response = consumer_handler.make_handler(lambda: deps)(event, context)
    took = time.monotonic() - started
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]}
    assert context.get_remaining_time_in_millis() > 500  # returned with time to spare, not timed out
    assert 0.5 < took < 1.3
    assert len(loops.observer.write_calls) > 5  # it did retry while there was time


def test_the_consumer_does_not_retry_inside_the_safety_margin(loops: Loops, tmp_path: Path) -> None:
    trips = generated_trips(tmp_path, 5)
    event = lambda_event(as_records(trips))
    loops.inject(seed=1, unprocessed_items=1.0)
    deps = Dependencies(loops.handler_clients, deadline_settings(loops))
    response = consumer_handler.make_handler(lambda: deps)(event, consumer_context(timeout_seconds=0.5))
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]
    assert len(loops.observer.write_calls) == 1  # one attempt, no retry


def test_with_time_left_the_consumer_retries_until_everything_is_written(loops: Loops, tmp_path: Path) -> None:
    trips = generated_trips(tmp_path, 30)
    event = lambda_event(as_records(trips))
    loops.inject(seed=2, unprocessed_items=0.5)
    deps = Dependencies(loops.handler_clients, deadline_settings(loops))
    response = consumer_handler.make_handler(lambda: deps)(event, consumer_context(timeout_seconds=120))
    assert response == {"batchItemFailures": []}
    tables = {table: loops.table(index) for index, table in enumerate(loops.tables)}
    assert tables == expected_tables(loops.settings, trips)


# ---------------------------------------------------------------- the producer's dead-letter queue


def s3_event(loops: Loops, path: Path, key: str) -> dict[str, Any]:
    return upload_with_event(loops.clients, loops.name, path, key)


def receive_all(loops: Loops, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        answer = loops.clients.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        if not answer.get("Messages"):
            return messages
        messages.extend(dict(message) for message in answer["Messages"])


def test_a_given_up_producer_event_goes_to_the_dead_letter_queue(loops: Loops, tmp_path: Path) -> None:
    queue_url = loops.clients.sqs.create_queue(QueueName=f"{loops.name}-dlq")["QueueUrl"]
    path = write_sample(tmp_path / "trips.csv", 50, seed=random.Random(3).randint(1, 1000))
    event = s3_event(loops, path, "in/trips.csv")
    faults = loops.inject(seed=1, put_entry_failure=1.0)
    deps = Dependencies(loops.handler_clients, loops.settings.with_changes(retry_max_attempts=2))
    run = invoke_producer(
        producer_handler.make_handler(lambda: deps),
        event,
        PRODUCER,
        sqs=loops.clients.sqs,
        dead_letter_queue_url=queue_url,
    )
    assert run.gave_up and run.invocations == run.failed_invocations == 3 and run.results == []
    assert sum(faults.counts.entries_failed.values()) > 0 and sum(loops.stored().values()) == 0
    (message,) = receive_all(loops, queue_url)
    assert run.dead_letter_message_id == message["MessageId"]
    assert orjson.loads(message["Body"]) == event  # the original event, as Lambda sends it
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["ErrorCode"] == "200" and attributes["RequestID"]
    assert attributes["ErrorMessage"].startswith("RecordsNotSent: ") and len(attributes["ErrorMessage"]) <= 1024


def test_a_producer_that_succeeds_on_a_retry_sends_nothing_to_the_dead_letter_queue(
    loops: Loops, tmp_path: Path
) -> None:
    queue_url = loops.clients.sqs.create_queue(QueueName=f"{loops.name}-dlq")["QueueUrl"]
    event = s3_event(loops, write_sample(tmp_path / "trips.csv", 50), "in/trips.csv")
    deps = Dependencies(loops.handler_clients, loops.settings)
    handler = producer_handler.make_handler(lambda: deps)
    attempts = [0]

    def fails_once(event: dict[str, Any], context: Any) -> dict[str, Any]:
        attempts[0] += 1
        if attempts[0] == 1:
            raise RuntimeError("the first attempt fails")
        return handler(event, context)

    run = invoke_producer(fails_once, event, PRODUCER, sqs=loops.clients.sqs, dead_letter_queue_url=queue_url)
    assert not run.gave_up and run.invocations == 2 and run.dead_letter_message_id is None
    assert receive_all(loops, queue_url) == []


def test_run_file_sends_the_given_up_event_to_the_stacks_dead_letter_queue(fresh_endpoint: str, tmp_path: Path) -> None:
    from tripstream.infra.stack import deploy_for_local_runtime
    from tripstream.local.commands.run import run_file

    clients = AwsClients.create(endpoint_url=fresh_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    handler_clients = AwsClients.create(
        endpoint_url=fresh_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS, max_attempts=1
    )
    stack, _ = deploy_for_local_runtime(clients)
    queue_url = stack.outputs["ProducerDeadLetterQueueUrl"]
    faults = FaultInjector(FaultPlan(seed=1, put_entry_failure=1.0)).install(handler_clients)
    summary = run_file(
        clients,
        handler_clients,
        stack,
        write_sample(tmp_path / "trips.csv", 40),
        environment_overrides={"RETRY_MAX_ATTEMPTS": "2", "RETRY_BASE_DELAY": "0.001", "RETRY_MAX_DELAY": "0.005"},
    )
    assert not summary.ok and summary.producer_errors_final and summary.producer_invocations == 3
    assert sum(faults.counts.entries_failed.values()) > 0
    answer = clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    (message,) = answer["Messages"]
    assert summary.producer_dead_letter_message_id == message["MessageId"]
    body = orjson.loads(message["Body"])
    (record,) = body["Records"]
    assert record["eventName"].startswith("ObjectCreated") and record["s3"]["object"]["key"] == "trips.csv"
    assert record["s3"]["bucket"]["name"] == stack.bucket
