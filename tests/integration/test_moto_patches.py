"""What tripstream.local.emulator.moto_patches fixes in moto's Kinesis shard, shown with and without it.

Over real HTTP (boto3 against an emulator started with and without the patches): records lost to
concurrent writers; answers the same as moto's. In-process: the patched ``Shard.get_records`` returns exactly what
moto's own method returns, and a put or a read touches the shard's records by key, not all of them (the speed
itself is measured by bench/, not asserted here).
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.kinesis import models as kinesis_models

from tripstream.local.emulator import moto_patches
from tripstream.local.emulator.moto_patches import dispatch as dispatch_patches
from tripstream.local.emulator.moto_patches import kinesis as kinesis_patches

pytestmark = pytest.mark.integration

SHARD_ID = "shardId-000000000000"
BATCH_SIZE = 500  # the PutRecords maximum

# -- over HTTP ------------------------------------------------------------------------------------


def _kinesis(endpoint_url: str) -> Any:
    # No retries: a retried PutRecords would store its records twice and blur the counts.
    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=8, read_timeout=120)
    return boto3.client("kinesis", endpoint_url=endpoint_url, region_name="us-east-1", config=config)


def _create_stream(endpoint_url: str, name: str) -> Any:
    kinesis = _kinesis(endpoint_url)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    return kinesis


def _batch(tag: str, size: int = BATCH_SIZE) -> list[dict[str, Any]]:
    return [{"Data": f"{tag}/{i}".encode(), "PartitionKey": f"{tag}/{i}"} for i in range(size)]


def _put_concurrently(endpoint_url: str, stream: str, writers: int, batches: int) -> list[str]:
    """Each writer sends ``batches`` full PutRecords batches; returns every sequence number given back."""
    acknowledged: list[str] = []
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        kinesis = _kinesis(endpoint_url)
        try:
            for batch in range(batches):
                response = kinesis.put_records(StreamName=stream, Records=_batch(f"{writer}-{batch}"))
                assert response["FailedRecordCount"] == 0
                acknowledged.extend(entry["SequenceNumber"] for entry in response["Records"])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return acknowledged


def _read_all(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=SHARD_ID, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    records: list[dict[str, Any]] = []
    while True:
        response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        if not response["Records"]:
            return records
        records.extend(response["Records"])
        iterator = response["NextShardIterator"]


WRITERS, BATCHES = 4, 10
SENT = WRITERS * BATCHES * BATCH_SIZE


def test_unpatched_moto_loses_records_to_concurrent_writers(unpatched_endpoint: str, aws_env: None) -> None:
    """Measured: 275 to 588 of 20,000 records lost (1.4-2.9%); 1,929 of 40,000 with 20 batches each."""
    kinesis = _create_stream(unpatched_endpoint, "loss-unpatched")

    acknowledged = _put_concurrently(unpatched_endpoint, "loss-unpatched", WRITERS, BATCHES)
    stored = _read_all(kinesis, "loss-unpatched")

    assert len(acknowledged) == SENT  # every record was acknowledged ...
    assert len(stored) < SENT  # ... yet some are gone:
    assert len(set(acknowledged)) < SENT  # two callers were given the same sequence number


def test_patched_moto_keeps_every_record_in_order(patched_endpoint: str, aws_env: None) -> None:
    kinesis = _create_stream(patched_endpoint, "loss-patched")

    acknowledged = _put_concurrently(patched_endpoint, "loss-patched", WRITERS, BATCHES)
    stored = _read_all(kinesis, "loss-patched")

    expected = {f"{w}-{b}/{i}" for w in range(WRITERS) for b in range(BATCHES) for i in range(BATCH_SIZE)}
    assert len(stored) == SENT
    assert {record["Data"].decode() for record in stored} == expected
    numbers = [int(record["SequenceNumber"]) for record in stored]
    assert all(a < b for a, b in itertools.pairwise(numbers))  # unique and increasing
    assert sorted(int(number) for number in acknowledged) == numbers  # as told to the callers


# -- in-process: the patched Shard itself ---------------------------------------------------------

ShardMethod = Callable[..., Any]


@pytest.fixture
def moto_methods() -> Iterator[dict[str, ShardMethod]]:
    """Apply the patches in this process; yield moto's own methods; leave things as they were."""
    was_applied = moto_patches.is_applied()
    moto_patches.revert()
    originals: dict[str, ShardMethod] = {
        name: getattr(kinesis_models.Shard, name)
        for name in ("put_record", "get_records", "get_max_sequence_number", "get_min_sequence_number")
    }
    moto_patches.apply()
    yield originals
    if not was_applied:
        moto_patches.revert()


def _shard_with(records: int, created_at: Callable[[int], float] | None = None) -> Any:
    """A shard of ``records`` records; record ``n`` (from 1) arrives at ``created_at(n)`` if given."""
    shard = kinesis_models.Shard(0, 0, 2**128 - 1)
    clock = kinesis_patches._clock
    try:
        for i in range(records):
            if created_at is not None:
                kinesis_patches._clock = lambda number=i + 1: created_at(number)
            shard.put_record(f"key-{i}", f"data-{i}", "")
    finally:
        kinesis_patches._clock = clock
    return shard


def test_get_records_semantics(moto_methods: dict[str, ShardMethod]) -> None:
    shard = _shard_with(10, created_at=lambda number: 1000.0 + number * 0.25)

    def numbers(result: tuple[list[Any], int, int]) -> tuple[list[int], int, int]:
        records, last, millis = result
        return [record.sequence_number for record in records], last, millis

    assert numbers(shard.get_records("0", 3)) == ([1, 2, 3], 3, 1750)  # limit; 7 records * 250 ms behind
    assert numbers(shard.get_records("3", 2)) == ([4, 5], 5, 1250)  # starts after the sequence number
    assert numbers(shard.get_records("-1", 1)) == ([1], 1, 2250)  # AT_SEQUENCE_NUMBER 0
    assert numbers(shard.get_records("8", None)) == ([9, 10], 10, 0)  # no limit; caught up
    assert numbers(shard.get_records("10", 5)) == ([], 10, 0)  # empty at the end
    assert numbers(shard.get_records("42", 5)) == ([], 42, 0)  # past the end keeps its position
    for last in range(-1, 12):
        for limit in (None, 1, 2, 5, 10, 100):
            assert shard.get_records(str(last), limit) == moto_methods["get_records"](shard, str(last), limit)


def test_min_and_max_sequence_numbers(moto_methods: dict[str, ShardMethod]) -> None:
    empty = _shard_with(0)
    assert (empty.get_min_sequence_number(), empty.get_max_sequence_number()) == (0, 0)
    shard = _shard_with(7)
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (1, 7)
    assert moto_methods["get_max_sequence_number"](shard) == 7


def test_put_record_is_atomic_across_threads(moto_methods: dict[str, ShardMethod]) -> None:
    shard = _shard_with(0)
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [
            threading.Thread(target=lambda: [shard.put_record("k", "d", "") for _ in range(2000)]) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous_interval)
    assert list(shard.records) == list(range(1, 16_001))
    assert shard.get_max_sequence_number() == 16_000


def test_records_follow_moto_replacing_the_records_dict(moto_methods: dict[str, ShardMethod]) -> None:
    shard = _shard_with(5)
    shard.records = OrderedDict()  # what moto's split_shard does
    assert shard.get_max_sequence_number() == 0
    assert shard.put_record("k", "YWdhaW4=", "") == "1"  # moto receives the data as base64 text
    records = shard.get_records("0", None)[0]
    assert [(r.data, r.to_json()["Data"]) for r in records] == [("YWdhaW4=", b"again")]

    donor = _shard_with(3)
    shard.records = donor.records  # a dict filled behind the index's back
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (1, 3)
    assert shard.put_record("k", "fourth", "") == "4"


def test_resharding_through_moto_keeps_shards_readable(moto_methods: dict[str, ShardMethod]) -> None:
    backend = kinesis_models.KinesisBackend("us-east-1", "123456789012")  # not moto's global one
    stream = backend.create_stream("reshard", 1)
    for i in range(50):
        stream.put_record(f"key-{i}", "", f"data-{i}")
    # split_shard replaces shard.records, then puts the records again; merge_shards puts both
    # children's records into a new shard.
    backend.update_shard_count(stream.arn, "reshard", 2)
    backend.update_shard_count(stream.arn, "reshard", 1)
    assert sum(len(shard.records) for shard in stream.shards.values()) >= 50
    for shard in stream.shards.values():
        records, last, _ = shard.get_records("0", None)
        assert [r.sequence_number for r in records] == list(shard.records)
        assert last == shard.get_max_sequence_number() == len(shard.records)


class _CountingRecords(OrderedDict[int, Any]):
    """moto's own ``shard.records``, counting the keys any call walks."""

    walked = 0

    def keys(self) -> Any:
        for key in super().__iter__():
            self.walked += 1
            yield key


def test_moto_s_own_put_walks_every_record_of_the_shard(moto_methods: dict[str, ShardMethod]) -> None:
    """Why the patch exists: moto's put_record finds the next number by listing every key (PutRecords slowed
    from 8k to 1.3k records/s between 1k and 30k records in a shard, measured before the patch)."""
    moto_patches.revert()
    try:
        shard = kinesis_models.Shard(0, 0, 2**128 - 1)
        shard.records = _CountingRecords()
        for i in range(1_000):
            moto_methods["put_record"](shard, f"k{i}", "ZGF0YQ==", "")
        walked_before = shard.records.walked
        moto_methods["put_record"](shard, "last", "ZGF0YQ==", "")
        assert shard.records.walked - walked_before == 1_000
    finally:
        moto_patches.apply()


def _statements_of(call: Callable[[], Any]) -> list[str]:
    """The SQL statements the store runs during ``call``."""
    connection = kinesis_patches.store().connection
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    try:
        call()
    finally:
        connection.set_trace_callback(None)
    return statements


def _scans(statements: list[str]) -> list[str]:
    """Plans that read a whole table or index (SQLite's ``SCAN``) rather than search its key."""
    connection = kinesis_patches.store().connection
    plans = []
    for statement in statements:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall():
                if str(row[-1]).startswith("SCAN"):
                    plans.append(f"{statement}: {row[-1]}")
    return plans


def test_patched_put_and_get_search_the_shard_by_key(moto_methods: dict[str, ShardMethod]) -> None:
    """A put and a read at the end of a 20,000-record shard touch its records by key (O(log n)), whatever its size:
    no statement scans, no Python walk of the records, and a read returns only what it asked for."""
    shard = _shard_with(20_000)
    walked = []
    records_type = type(shard.records)
    original_iter = records_type.__iter__
    records_type.__iter__ = lambda self: walked.append(1) or original_iter(self)  # type: ignore[method-assign]
    try:
        put = _statements_of(lambda: shard.put_record("k", "ZGF0YQ==", ""))
        got: list[Any] = []
        read = _statements_of(lambda: got.extend(shard.get_records("19990", 100)[0]))
        numbers = _statements_of(lambda: (shard.get_max_sequence_number(), shard.get_min_sequence_number()))
    finally:
        records_type.__iter__ = original_iter  # type: ignore[method-assign]
    assert put and read, "the store was not used"
    assert _scans(put + read + numbers) == []
    assert walked == []
    assert [record.sequence_number for record in got] == list(range(19_991, 20_002))


def test_apply_is_idempotent_and_revertible(moto_methods: dict[str, ShardMethod]) -> None:
    patched = kinesis_models.Shard.get_records
    moto_patches.apply()
    assert kinesis_models.Shard.get_records is patched
    moto_patches.revert()
    assert not moto_patches.is_applied()
    assert kinesis_models.Shard.get_records is moto_methods["get_records"]
    moto_patches.apply()
    assert kinesis_models.Shard.get_records is patched


def test_apply_refuses_a_different_moto_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    class ReshapedShard:
        def __init__(self) -> None:
            self.records: dict[int, Any] = {}

        def put_record(self, partition_key: str, data: str) -> str:
            return "1"

    monkeypatch.setattr(kinesis_models, "Shard", ReshapedShard)
    with pytest.raises(moto_patches.MotoVersionError, match=r"moto 5\.2\.1.*get_records is missing"):
        moto_patches.apply()


def test_the_s3_patch_refuses_a_moto_whose_completion_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A completion that no longer hands its value to put_object, or takes other parameters, is refused."""
    from moto.s3 import models as s3_models

    from tripstream.local.emulator.moto_patches import s3 as s3_patches

    was_applied = hasattr(s3_models.FakeMultipart, "_tripstream_original_complete")
    s3_patches.revert()
    try:

        def reshaped(self: Any, body: Any, checksums: Any = None) -> Any:
            return None

        monkeypatch.setattr(s3_models.FakeMultipart, "complete", reshaped)
        with pytest.raises(moto_patches.MotoVersionError, match=r"FakeMultipart\.complete does not take"):
            s3_patches.apply()
        monkeypatch.undo()
        monkeypatch.setattr(s3_models.S3Backend, "put_object", lambda self, *args, **kwargs: None)
        with pytest.raises(moto_patches.MotoVersionError, match="put_object no longer hands its value"):
            s3_patches.apply()
    finally:
        monkeypatch.undo()
        if was_applied:
            s3_patches.apply()


# --- DynamoDB Item: the size check summed as it goes ----------------------------------------------

_ITEMS: list[dict[str, Any]] = [
    {"trip_id": {"S": "a"}},
    {
        "trip_id": {"S": "abc-123"},
        "pickup_datetime": {"S": "2024-01-01T00:00:00"},
        "total_amount": {"N": "51.25"},
        "flag": {"BOOL": True},
        "nothing": {"NULL": True},
        "blob": {"B": b"\x00\x01\x02"},
        "tags": {"SS": ["x", "yz"]},
        "numbers": {"NS": ["1", "2.5"]},
        "nested": {"M": {"inner": {"L": [{"S": "deep"}, {"N": "3"}, {"M": {"k": {"S": "v"}}}]}}},
    },
]


def _original_item_init() -> Any:
    from moto.dynamodb.models import dynamo_type

    return vars(dynamo_type.Item).get("_tripstream_original_init", dynamo_type.Item.__init__)


def _build(init: Any, attrs: dict[str, Any]) -> Any:
    from moto.dynamodb.models import dynamo_type

    item = dynamo_type.Item.__new__(dynamo_type.Item)
    init(item, dynamo_type.DynamoType(attrs["trip_id"]), None, attrs)
    return item


@pytest.mark.parametrize("attrs", _ITEMS)
def test_patched_item_equals_motos_own(moto_methods: dict[str, ShardMethod], attrs: dict[str, Any]) -> None:
    from moto.dynamodb.models import dynamo_type

    patched = _build(dynamo_type.Item.__init__, attrs)
    original = _build(_original_item_init(), attrs)
    assert dynamo_type.Item.__init__ is not _original_item_init()
    assert type(patched.attrs) is type(original.attrs)
    assert patched.attrs == original.attrs
    assert list(patched.attrs) == list(original.attrs)
    assert patched.to_json() == original.to_json()
    assert patched.size() == original.size()


def test_patched_item_refuses_exactly_what_moto_refuses(moto_methods: dict[str, ShardMethod]) -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type

    # trip_id (7 + 1 bytes) + "pad" (3 bytes) + the padding: find moto's own boundary, then compare both sides of it.
    def attrs(pad: int) -> dict[str, Any]:
        return {"trip_id": {"S": "x"}, "pad": {"S": "p" * pad}, "after": {"S": "z"}}

    def accepted(init: Any, pad: int) -> bool:
        try:
            _build(init, attrs(pad))
        except ItemSizeTooLarge:
            return False
        return True

    original = _original_item_init()
    low, high = 0, 500_000
    while high - low > 1:  # the largest pad moto's own Item accepts
        middle = (low + high) // 2
        low, high = (middle, high) if accepted(original, middle) else (low, middle)
    for pad in (low - 1, low, low + 1, high + 10):
        assert accepted(dynamo_type.Item.__init__, pad) == accepted(original, pad), pad


def test_revert_restores_motos_item(moto_methods: dict[str, ShardMethod]) -> None:
    from moto.dynamodb.models import dynamo_type

    original = _original_item_init()
    moto_patches.revert()
    assert dynamo_type.Item.__init__ is original
    moto_patches.apply()
    assert dynamo_type.Item.__init__ is not original


def test_patched_batch_write_stores_the_same_items(patched_endpoint: str, aws_env: None) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=patched_endpoint, region_name="us-east-1")
    dynamodb.create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.batch_write_item(RequestItems={"items": [{"PutRequest": {"Item": item}} for item in _ITEMS]})
    for item in _ITEMS:
        stored = dynamodb.get_item(TableName="items", Key={"trip_id": item["trip_id"]})["Item"]
        expected = dict(item)
        # DynamoDB returns sets unordered
        for name in ("tags", "numbers"):
            if name in expected:
                kind = next(iter(expected[name]))
                assert sorted(stored.pop(name)[kind]) == sorted(expected.pop(name)[kind])
        assert stored == expected
    too_big = {"trip_id": {"S": "big"}, "pad": {"S": "p" * 410_000}}
    with pytest.raises(dynamodb.exceptions.ClientError, match="Item size has exceeded"):
        dynamodb.put_item(TableName="items", Item=too_big)


# ---------------------------------------------------------------- DynamoDB Scan and Query answers

_READ_ITEMS = [
    {
        "trip_id": {"S": f"trip-{n:03d}"},
        "total_amount": {"N": "52.50"},
        "pickup_datetime": {"S": "2019-01-01T00:00:00"},
        "raw": {"B": bytes([n % 256, 0, 255])},
        "tags": {"SS": ["a", "b"]},
        "nested": {"M": {"list": {"L": [{"N": "1"}, {"BOOL": True}, {"NULL": True}, {"BS": [b"\x01"]}]}}},
    }
    for n in range(120)
]


def _reads(endpoint: str) -> dict[str, Any]:
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    table = "reads"
    if table not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for start in range(0, len(_READ_ITEMS), 25):
            chunk = _READ_ITEMS[start : start + 25]
            dynamodb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": item}} for item in chunk]})
    pages = list(dynamodb.get_paginator("scan").paginate(TableName=table, PaginationConfig={"PageSize": 50}))
    projected = dynamodb.scan(
        TableName=table,
        ProjectionExpression="#t, total_amount",
        ExpressionAttributeNames={"#t": "trip_id"},
        FilterExpression="total_amount > :v",
        ExpressionAttributeValues={":v": {"N": "50"}},
        ReturnConsumedCapacity="TOTAL",
    )
    query = dynamodb.query(
        TableName=table,
        KeyConditionExpression="trip_id = :k",
        ExpressionAttributeValues={":k": {"S": "trip-007"}},
    )
    for answer in (projected, query, *pages):
        answer.pop("ResponseMetadata")
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.scan(TableName="no-such-table")
    return {"pages": pages, "projected": projected, "query": query}


def test_patched_scan_and_query_answer_exactly_what_moto_answers(
    patched_endpoint: str, unpatched_endpoint: str, aws_env: None
) -> None:
    """Scan/Query answers are written as plain JSON by the patch (moto's generic serialiser is ~5x slower): every
    attribute type, paging, projections, filters, consumed capacity and errors come out the same."""
    patched, unpatched = _reads(patched_endpoint), _reads(unpatched_endpoint)
    assert patched == unpatched
    assert sum(page["Count"] for page in patched["pages"]) == len(_READ_ITEMS)
    assert len(patched["pages"]) >= 3 and "LastEvaluatedKey" in patched["pages"][0]
    assert patched["query"]["Items"] == [_READ_ITEMS[7]]


def test_retention_drops_old_records_but_keeps_the_newest(moto_methods: dict[str, ShardMethod]) -> None:
    shard = _shard_with(5, created_at=lambda number: 1000.0 + number)
    assert kinesis_patches.trim_shard(shard, cutoff=1003.0) == 2  # records 1 and 2 are older than the cutoff
    assert list(shard.records) == [3, 4, 5]
    assert [r.sequence_number for r in shard.get_records("0", None)[0]] == [3, 4, 5]
    assert kinesis_patches.trim_shard(shard, cutoff=9999.0) == 2  # everything expired: the newest stays
    assert list(shard.records) == [5]
    assert shard.put_record("k", "d", "") == "6"  # numbering continues, iterators stay valid
    assert [r.sequence_number for r in shard.get_records("5", None)[0]] == [6]


def test_transactions_skip_moto_s_expression_parsing_only_for_the_two_shapes() -> None:
    """The handler's per-action parsing is skipped for a Put under attribute_not_exists(<key>) and an ADD whose names
    are exactly those it uses; anything else (an unused name, a SET, an empty key) goes through moto's own checks."""
    from tripstream.local.emulator.moto_patches.transactions import _checked_directly

    put = {
        "Put": {
            "TableName": "m",
            "Item": {"trip_id": {"S": "t1"}},
            "ConditionExpression": "attribute_not_exists(trip_id)",
        }
    }
    add = {
        "Update": {
            "TableName": "c",
            "Key": {"pickup_location_id": {"S": "1"}, "pickup_hour": {"S": "2024-01-01T00"}},
            "UpdateExpression": "ADD #a :a, #b :b",
            "ExpressionAttributeNames": {"#a": "trips", "#b": "short"},
            "ExpressionAttributeValues": {":a": {"N": "1"}, ":b": {"N": "1"}},
        }
    }
    assert _checked_directly(put) and _checked_directly(add)
    unused_name = {"Update": {**add["Update"], "ExpressionAttributeNames": {"#a": "trips", "#b": "short", "#c": "x"}}}
    setting = {"Update": {**add["Update"], "UpdateExpression": "SET #a = :a, #b = :b"}}
    empty_key = {"Put": {**put["Put"], "Item": {"trip_id": {"S": ""}}}}
    other_condition = {"Put": {**put["Put"], "ConditionExpression": "attribute_exists(trip_id)"}}
    empty_values = {"Update": {**add["Update"], "ExpressionAttributeValues": {}}}
    for action in (unused_name, setting, empty_key, other_condition, empty_values, {"Delete": {"TableName": "m"}}):
        assert not _checked_directly(action), action


def test_items_on_disk_behave_as_moto_s_dict(moto_methods: dict[str, ShardMethod]) -> None:
    """A table's items in SQLite (moto_patches.dynamodb_storage): put, get, an update in place written back, delete,
    the count, and Scan pages in key order from the start key, on a table with a sort key."""
    from moto.dynamodb.models import DynamoDBBackend

    from tripstream.local.emulator.moto_patches.dynamodb_storage import DiskItems

    backend = DynamoDBBackend("us-east-1", "123456789012")  # not moto's global one
    table = backend.create_table(
        "cells",
        schema=[{"AttributeName": "zone", "KeyType": "HASH"}, {"AttributeName": "hour", "KeyType": "RANGE"}],
        attr=[{"AttributeName": "zone", "AttributeType": "S"}, {"AttributeName": "hour", "AttributeType": "S"}],
        throughput=None,
        billing_mode="PAY_PER_REQUEST",
        indexes=None,
        global_indexes=None,
        streams=None,
        sse_specification=None,
        tags=None,
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    assert isinstance(table.items, DiskItems)
    for zone in ("1", "2"):
        for hour in ("00", "01", "02"):
            backend.put_item("cells", {"zone": {"S": zone}, "hour": {"S": hour}, "trips": {"N": "1"}})
    key = {"zone": {"S": "1"}, "hour": {"S": "01"}}
    backend.update_item(
        "cells",
        key,
        update_expression="SET #t = :t",
        expression_attribute_names={"#t": "trips"},
        expression_attribute_values={":t": {"N": "5"}},
        attribute_updates=None,
        expected=None,
        condition_expression=None,
    )
    assert backend.get_item("cells", key).attrs["trips"].value == "5"  # written back
    assert len(table) == 6
    backend.delete_item("cells", {"zone": {"S": "2"}, "hour": {"S": "00"}})
    assert len(table) == 5 and backend.get_item("cells", {"zone": {"S": "2"}, "hour": {"S": "00"}}) is None
    first, _, last_key = table.scan({}, 2, None)
    assert [(i.hash_key.value, i.range_key.value) for i in first] == [("1", "00"), ("1", "01")]
    rest, _, end = table.scan({}, 10, last_key)
    assert [(i.hash_key.value, i.range_key.value) for i in rest] == [("1", "02"), ("2", "01"), ("2", "02")]
    assert end is None
    backend.delete_table("cells")
    assert table.items.count() == 0


# ---------------------------------------------------------------- Kinesis PutRecords and GetRecords answers


def _stream_answers(endpoint: str) -> dict[str, Any]:
    kinesis = _create_stream(endpoint, "answers")
    records = [{"Data": bytes([n, 0, 255]) + f"é{n}".encode(), "PartitionKey": f"k{n}"} for n in range(40)]
    put = kinesis.put_records(StreamName="answers", Records=records)
    iterator = kinesis.get_shard_iterator(StreamName="answers", ShardId=SHARD_ID, ShardIteratorType="TRIM_HORIZON")
    got = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=25)
    rest = kinesis.get_records(ShardIterator=got["NextShardIterator"])
    for answer in (put, got, rest):
        answer.pop("ResponseMetadata")
    return {"put": put, "got": got, "rest": rest}


def test_patched_put_and_get_records_answer_what_moto_answers(
    patched_endpoint: str, unpatched_endpoint: str, aws_env: None
) -> None:
    """PutRecords/GetRecords answers are written as plain JSON by the patch: the same fields, values and types as
    moto's own serialiser gives (the arrival times and iterators differ between two streams, not their types)."""
    patched, unpatched = _stream_answers(patched_endpoint), _stream_answers(unpatched_endpoint)
    for answers in (patched, unpatched):
        for name in ("got", "rest"):
            records = answers[name]["Records"]
            assert all(isinstance(record.pop("ApproximateArrivalTimestamp"), datetime) for record in records)
            assert isinstance(answers[name].pop("NextShardIterator"), str)
    assert patched == unpatched
    assert len(patched["got"]["Records"]) == 25 and len(patched["rest"]["Records"]) == 15
    assert patched["got"]["Records"][3]["Data"] == bytes([3, 0, 255]) + "é3".encode()


def _put_records_outcomes(endpoint: str) -> list[Any]:
    """PutRecords on a stream of three shards: a batch spread over them (the answers, then each shard's records in
    order), and each of moto's limits broken once (the error code and message)."""
    kinesis = _kinesis(endpoint)
    kinesis.create_stream(StreamName="spread", ShardCount=3)
    outcomes: list[Any] = []
    for tag in ("a", "b"):
        answer = kinesis.put_records(StreamName="spread", Records=_batch(tag, 200))
        outcomes.append([(entry["ShardId"], entry["SequenceNumber"]) for entry in answer["Records"]])
    for shard in kinesis.list_shards(StreamName="spread")["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName="spread", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        got = kinesis.get_records(ShardIterator=iterator)["Records"]
        outcomes.append([(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in got])
    too_big = [{"Data": b"x" * (1024 * 1024), "PartitionKey": "k"}]
    for records in (
        _batch("many", 501),
        [{"Data": b"x", "PartitionKey": "ok"}, *too_big],
        [{"Data": b"x" * (900 * 1024), "PartitionKey": f"k{n}"} for n in range(6)],
        [{"Data": b"x", "PartitionKey": "k" * 257}],
    ):
        with pytest.raises(kinesis.exceptions.ClientError) as raised:
            kinesis.put_records(StreamName="spread", Records=records)
        outcomes.append((raised.value.response["Error"]["Code"], raised.value.response["Error"].get("Message")))
    # A refused call stores nothing: the shards hold the two batches only.
    outcomes.append(sum(len(_shard_records(kinesis, "spread", s["ShardId"])) for s in _shards(kinesis, "spread")))
    return outcomes


def _shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    return list(kinesis.list_shards(StreamName=stream)["Shards"])


def _shard_records(kinesis: Any, stream: str, shard_id: str) -> list[dict[str, Any]]:
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    return list(kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"])


def test_patched_put_records_spreads_and_refuses_as_moto_does(
    patched_endpoint: str, unpatched_endpoint: str, aws_env: None
) -> None:
    """The patched PutRecords (each shard's records inserted at once) gives every record the shard and sequence
    number moto gives it, and refuses what moto refuses with moto's error, storing nothing of a refused call."""
    patched = _put_records_outcomes(patched_endpoint)
    assert patched == _put_records_outcomes(unpatched_endpoint)
    assert len({shard for shard, _ in patched[0]}) == 3  # the batch did spread over the three shards
    assert patched[-1] == 400


def _write_answers(endpoint: str) -> list[dict[str, Any]]:
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    table = "write-answers"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    answers = []
    for capacity in ("NONE", "TOTAL", "INDEXES"):
        batch = [{"PutRequest": {"Item": item}} for item in _READ_ITEMS[:25]]
        answers.append(
            dynamodb.batch_write_item(RequestItems={table: batch}, ReturnConsumedCapacity=capacity)  # type: ignore[arg-type]
        )
        answers.append(
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {"trip_id": {"S": f"tx-{capacity}"}}}},
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"trip_id": {"S": "cell"}},
                            "UpdateExpression": "ADD #n :one",
                            "ExpressionAttributeNames": {"#n": "trips"},
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ],
                ReturnConsumedCapacity=capacity,  # type: ignore[arg-type]
            )
        )
    for answer in answers:
        answer.pop("ResponseMetadata")
    return answers


def test_patched_write_answers_are_what_moto_answers(
    patched_endpoint: str, unpatched_endpoint: str, aws_env: None
) -> None:
    """BatchWriteItem answers are written as plain JSON, TransactWriteItems' by tripstream's own handler: both parse
    to what moto's own answers parse to, with and without consumed capacity."""
    assert _write_answers(patched_endpoint) == _write_answers(unpatched_endpoint)


# ---------------------------------------------------------------- per-request dispatch helpers


def test_handler_method_names_are_moto_s_and_listed_once(
    moto_methods: dict[str, ShardMethod], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core import responses, utils
    from moto.dynamodb.responses import DynamoHandler
    from moto.kinesis.responses import KinesisResponse

    listings: list[object] = []
    dispatch_patches.revert()
    expected = {handler: responses.method_names_from_class(handler) for handler in (DynamoHandler, KinesisResponse)}
    dispatch_patches.apply()
    monkeypatch.setattr(utils.inspect, "getmembers", _counting(utils.inspect.getmembers, listings))
    for _ in range(3):
        for handler, names in expected.items():
            assert responses.method_names_from_class(handler) == names
    assert listings == [DynamoHandler, KinesisResponse]  # once per class, not once per request


def test_a_kinesis_request_body_is_parsed_once_and_read_as_moto_reads_it(
    moto_methods: dict[str, ShardMethod], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core import responses
    from moto.kinesis.responses import KinesisResponse

    def handler(body: str) -> Any:
        response = KinesisResponse()
        response.body, response.querystring, response.uri_match = body, {}, None
        return response

    body = '{"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k"}], "Big": 123456789012345678901234}'
    questions = [("StreamName", None), ("Records", None), ("StreamARN", None), ("Absent", "default"), ("Big", None)]
    dispatch_patches.revert()
    expected = [handler(body)._get_param(name, default) for name, default in questions]
    dispatch_patches.apply()
    parses: list[object] = []
    monkeypatch.setattr(responses.json, "loads", _counting(responses.json.loads, parses))
    patched = handler(body)
    assert [patched._get_param(name, default) for name, default in questions] == expected
    assert expected[4] == 123456789012345678901234  # read as json reads it (orjson would give a float)
    assert len(parses) == 1  # moto parsed the body for each question
    assert handler("not json")._get_param("StreamName", "none") == "none"


def _counting(function: Callable[..., Any], calls: list[object]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return function(*args, **kwargs)

    return counted


def test_request_ids_are_52_letters_and_digits_from_moto_s_generator(moto_methods: dict[str, ShardMethod]) -> None:
    from moto.core import responses
    from moto.moto_api._internal import mock_random

    headers: dict[str, Any] = {}
    request_id = responses.gen_amzn_requestid_long(headers)
    assert headers == {"x-amzn-requestid": request_id}
    assert len(request_id) == 52 and request_id.isascii() and request_id.isalnum()
    mock_random.seed(7)
    first = responses.gen_amzn_requestid_long()
    mock_random.seed(7)
    assert responses.gen_amzn_requestid_long() == first  # moto's seed still decides them
    dispatch_patches.revert()
    assert responses.gen_amzn_requestid_long.__module__ == "moto.utilities.aws_headers"
    dispatch_patches.apply()


_XML_ANSWER = (
    "<CreateStreamResponse><ResponseMetadata><RequestId>old</RequestId></ResponseMetadata></CreateStreamResponse>"
)


def test_answers_are_enriched_as_moto_enriches_them(moto_methods: dict[str, ShardMethod]) -> None:
    """The status is text and the request id is in the headers for every answer; an XML answer's <RequestId> is that
    id; a JSON answer, scanned by moto for nothing, is returned as it came."""
    from moto.core.responses import BaseResponse

    json_answer = '{"Records":[],"note":"RequestId"}'
    headers, body = BaseResponse._enrich_response({"status": 200}, json_answer)  # type: ignore[arg-type]
    assert headers["status"] == "200" and len(headers["x-amzn-requestid"]) == 52
    assert body is json_answer
    headers, body = BaseResponse._enrich_response({}, _XML_ANSWER)
    assert body == _XML_ANSWER.replace(">old<", f">{headers['x-amzn-requestid']}<")
    assert BaseResponse._enrich_response({}, b"\x00bytes")[1] == b"\x00bytes"
    dispatch_patches.revert()
    unpatched = BaseResponse._enrich_response({}, _XML_ANSWER)
    assert unpatched[1] == _XML_ANSWER.replace(">old<", f">{unpatched[0]['x-amzn-requestid']}<")
    assert BaseResponse._enrich_response.__module__ == "moto.core.responses"
    dispatch_patches.apply()


def test_json_answers_are_what_json_dumps_writes() -> None:
    """orjson's text parses to what json.dumps's does: blobs as base64, naive and aware timestamps as epoch seconds,
    text past ASCII; where orjson cannot write a value (an integer past 64 bits, a key that is not text) json.dumps
    writes it; a value JSON has no type for is refused as before."""
    import json

    from tripstream.local.emulator.moto_patches.json_answers import json_default, json_text

    answers: list[Any] = [
        {"Data": b"\x00\xff", "At": datetime(2024, 11, 3, 1, 30, 5, 250000), "Text": "é—東", "N": [1.5, 10**16, None]},
        {"At": datetime.fromisoformat("2024-11-03T01:30:00-04:00"), "Deep": {"L": [{"M": {"B": bytearray(b"x")}}]}},
        {"Big": 10**40},
        {1: "key is a number"},
    ]
    for answer in answers:
        assert json.loads(json_text(answer)) == json.loads(json.dumps(answer, default=json_default))
    assert (
        json.loads(json_text(answers[0]))["At"]
        == datetime(2024, 11, 3, 1, 30, 5, 250000)
        .replace(
            tzinfo=datetime.now().astimezone().tzinfo.utc  # type: ignore[union-attr]
        )
        .timestamp()
    )
    with pytest.raises(TypeError, match="cannot write set"):
        json_text({"Set": {1, 2}})


_FIRST_PART = bytes(range(256)) * 20_480  # 5 MiB: the least a part may be but the last
_LAST_PART = b"the last part, shorter" * 1_000
_CHECKSUMS: dict[str, dict[str, str]] = {
    "default": {},  # moto's default: a full-object CRC64NVME
    "crc32": {"ChecksumAlgorithm": "CRC32"},
    "crc32-full-object": {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"},
    "sha1": {"ChecksumAlgorithm": "SHA1"},
    "sha256": {"ChecksumAlgorithm": "SHA256"},
    "crc32c": {"ChecksumAlgorithm": "CRC32C"},
    "crc64nvme": {"ChecksumAlgorithm": "CRC64NVME"},
}


def _multipart_outcomes(endpoint: str) -> list[Any]:
    """Multipart uploads of two parts under each checksum setting (the completion's answer, the object's head with
    its checksum, its content), and each of moto's refusals (the error code)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="parts")
    outcomes: list[Any] = []

    def upload(key: str, parts: list[bytes], **checksum: str) -> tuple[str, list[dict[str, Any]]]:
        upload_id = s3.create_multipart_upload(Bucket="parts", Key=key, **checksum)["UploadId"]
        sent = []
        for number, data in enumerate(parts, start=1):
            answer = s3.upload_part(Bucket="parts", Key=key, UploadId=upload_id, PartNumber=number, Body=data)
            sent.append({"PartNumber": number, "ETag": answer["ETag"]})
        return upload_id, sent

    for key, checksum in _CHECKSUMS.items():
        upload_id, sent = upload(key, [_FIRST_PART, _LAST_PART], **checksum)
        answer = s3.complete_multipart_upload(
            Bucket="parts", Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent}
        )
        head = s3.head_object(Bucket="parts", Key=key, ChecksumMode="ENABLED")
        body = s3.get_object(Bucket="parts", Key=key)["Body"].read()
        assert body == _FIRST_PART + _LAST_PART, key
        named = ("ETag", "Checksum", "ContentLength")
        outcomes.append(
            (
                key,
                {name: value for name, value in answer.items() if name.startswith(named)},
                {name: value for name, value in head.items() if name.startswith(named)},
                s3.get_object(Bucket="parts", Key=key, Range="bytes=5242870-5242889")["Body"].read(),
            )
        )
    refusals = {
        "a part's ETag that is not its own": ([_FIRST_PART, _LAST_PART], lambda sent: [{**sent[0], "ETag": '"0"'}]),
        "a part missing": ([_FIRST_PART, _LAST_PART], lambda sent: [sent[0], {**sent[1], "PartNumber": 3}]),
        "a small part before the last": ([_LAST_PART, _LAST_PART], lambda sent: sent),
    }
    for key, (parts, listed) in refusals.items():
        upload_id, sent = upload(key, parts)
        with pytest.raises(s3.exceptions.ClientError) as raised:
            s3.complete_multipart_upload(
                Bucket="parts", Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed(sent)}
            )
        outcomes.append((key, raised.value.response["Error"]["Code"]))
    # A refused completion stores nothing.
    outcomes.append(sorted(entry["Key"] for entry in s3.list_objects_v2(Bucket="parts").get("Contents", [])))
    return outcomes


def test_patched_multipart_completion_answers_and_stores_what_moto_does(
    patched_endpoint: str, unpatched_endpoint: str, aws_env: None
) -> None:
    """The patched completion (the parts copied into the object's file a block at a time, a full-object checksum
    summed block by block) stores the same content and answers the same ETag, checksum and errors as moto's own."""
    patched = _multipart_outcomes(patched_endpoint)
    assert patched == _multipart_outcomes(unpatched_endpoint)
    assert [outcome[1] for outcome in patched[len(_CHECKSUMS) :] if isinstance(outcome, tuple)] == [
        "InvalidPart",
        "InvalidPart",
        "EntityTooSmall",
    ]
