"""An emulator given a state folder (`up --state-dir`) keeps its tables and its stream there: a second emulator that
creates the same table and stream, after the first was killed with SIGKILL, finds the items and the records (with
their sequence numbers and the stream's creation time), and numbers new records past them. Without one, or after a
delete, a table or stream created again is empty, as in moto."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tripstream.local.emulator.moto_patches.dynamodb_storage import DiskItems
from tripstream.local.emulator.moto_patches.storage import FILE_NAME, STORE_VERSION, Store
from tripstream.local.emulator.server import Emulator, EmulatorError

pytestmark = pytest.mark.integration

TABLE, STREAM = "kept-items", "kept-stream"


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _create(endpoint_url: str) -> None:
    """The table and the stream, as a stack deployed again creates them."""
    _client("dynamodb", endpoint_url).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    kinesis = _client("kinesis", endpoint_url)
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.1})


def _records(endpoint_url: str) -> dict[str, list[tuple[int, bytes]]]:
    """Every record of every shard, from TRIM_HORIZON: shard -> [(sequence number, data)]."""
    kinesis = _client("kinesis", endpoint_url)
    found: dict[str, list[tuple[int, bytes]]] = {}
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        answer = kinesis.get_records(ShardIterator=iterator, Limit=10000)
        found[shard["ShardId"]] = [(int(r["SequenceNumber"]), r["Data"]) for r in answer["Records"]]
    return found


def _items(endpoint_url: str) -> dict[str, str]:
    pages = _client("dynamodb", endpoint_url).get_paginator("scan").paginate(TableName=TABLE)
    return {item["trip_id"]["S"]: item["fare"]["N"] for page in pages for item in page["Items"]}


def _created(endpoint_url: str) -> Any:
    return _client("kinesis", endpoint_url).describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"][
        "StreamCreationTimestamp"
    ]


def _kill_9(emulator: Emulator) -> None:
    """SIGKILL the emulator's process (its pid from its log's first line): nothing closes the store. (stop() then
    reaps it.)"""
    assert emulator.log_path is not None
    pid = int(re.findall(r"\(pid (\d+)\)", emulator.log_path.read_text())[-1])
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def first(tmp_path: Path) -> Iterator[tuple[Path, dict[str, list[tuple[int, bytes]]], dict[str, str], Any]]:
    """A first emulator on `tmp_path/state`: 40 items and 60 records written, then SIGKILLed."""
    state = tmp_path / "state"
    emulator = Emulator(log_path=tmp_path / "first.log", state_dir=state)
    url = emulator.start()
    try:
        _create(url)
        dynamodb = _client("dynamodb", url)
        for number in range(40):
            dynamodb.put_item(TableName=TABLE, Item={"trip_id": {"S": f"t{number}"}, "fare": {"N": str(number)}})
        entries = [{"Data": f"record {n}".encode(), "PartitionKey": f"k{n}"} for n in range(60)]
        _client("kinesis", url).put_records(StreamName=STREAM, Records=entries)
        records, items, created = _records(url), _items(url), _created(url)
        _kill_9(emulator)
    finally:
        emulator.stop()
    yield state, records, items, created


def test_a_second_emulator_finds_the_items_and_the_records_a_killed_one_kept(
    tmp_path: Path, first: tuple[Path, dict[str, list[tuple[int, bytes]]], dict[str, str], Any]
) -> None:
    state, records, items, created = first
    assert sum(map(len, records.values())) == 60 and len(items) == 40
    with Emulator(log_path=tmp_path / "second.log", state_dir=state) as second:
        _create(second.endpoint_url)
        assert _items(second.endpoint_url) == items
        assert _records(second.endpoint_url) == records  # the same data under the same sequence numbers
        assert _created(second.endpoint_url) == created  # the checkpoints, named by it, still apply
        # A new record is numbered past the kept ones of its shard (an iterator after them sees it).
        answer = _client("kinesis", second.endpoint_url).put_record(StreamName=STREAM, Data=b"new", PartitionKey="k0")
        kept = [number for number, _ in records[answer["ShardId"]]]
        assert int(answer["SequenceNumber"]) == max(kept, default=0) + 1


def test_a_deleted_table_or_stream_is_created_again_empty(
    tmp_path: Path, first: tuple[Path, dict[str, list[tuple[int, bytes]]], dict[str, str], Any]
) -> None:
    state, _, _, created = first
    with Emulator(log_path=tmp_path / "second.log", state_dir=state) as second:
        url = second.endpoint_url
        _create(url)
        _client("dynamodb", url).delete_table(TableName=TABLE)
        _client("kinesis", url).delete_stream(StreamName=STREAM)
        _client("kinesis", url).get_waiter("stream_not_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.1})
        _create(url)
        assert _items(url) == {}
        assert all(not found for found in _records(url).values())
        assert _created(url) != created


def test_without_a_state_folder_nothing_is_kept(tmp_path: Path) -> None:
    for name in ("one", "two"):
        with Emulator(log_path=tmp_path / f"{name}.log") as emulator:
            _create(emulator.endpoint_url)
            assert _items(emulator.endpoint_url) == {}
            assert all(not found for found in _records(emulator.endpoint_url).values())
            _client("dynamodb", emulator.endpoint_url).put_item(
                TableName=TABLE, Item={"trip_id": {"S": "t"}, "fare": {"N": "1"}}
            )
            _client("kinesis", emulator.endpoint_url).put_record(StreamName=STREAM, Data=b"x", PartitionKey="k")


def test_one_emulator_at_a_time_on_a_state_folder(tmp_path: Path) -> None:
    """Two emulators on one kept store would number their records over each other: the second is refused."""
    second = Emulator(log_path=tmp_path / "two.log", state_dir=tmp_path / "state")
    with (
        Emulator(log_path=tmp_path / "one.log", state_dir=tmp_path / "state"),
        pytest.raises(EmulatorError, match="in use by another emulator"),
    ):
        second.start()
    with Emulator(log_path=tmp_path / "three.log", state_dir=tmp_path / "state") as again:  # free once stopped
        _create(again.endpoint_url)


def test_a_kept_store_of_another_layout_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    with sqlite3.connect(tmp_path / "state" / FILE_NAME) as connection:
        connection.execute("PRAGMA user_version=99")
    with pytest.raises(EmulatorError, match="emulator store version 99; this tripstream reads version 1 or 2"):
        Emulator(log_path=tmp_path / "emulator.log", state_dir=tmp_path / "state").start()


def _layout(path: Path) -> tuple[int, list[str]]:
    with sqlite3.connect(path) as connection:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        indexes = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")]
    return version, sorted(name for name in indexes if not name.startswith("sqlite_autoindex"))


def test_a_new_store_keeps_items_in_rowid_order_with_a_key_index(tmp_path: Path) -> None:
    store = Store(tmp_path / FILE_NAME, persistent=True)
    items = DiskItems(store.owner_for("dynamodb/t"), False, store)
    store.connection.execute("INSERT INTO items (t, h, r, v) VALUES (?, 'Sa', '', x'00')", (items.owner,))
    assert items.get_row("Sa", "") == b"\x00"
    store.close()
    assert _layout(tmp_path / FILE_NAME) == (STORE_VERSION, ["items_key"])


def test_a_version_1_store_is_read_and_written_as_it_is(tmp_path: Path) -> None:
    """Version 1 kept the items WITHOUT ROWID, keyed (t, h, r): the same statements serve it; nothing is added."""
    path = tmp_path / FILE_NAME
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE items (t INTEGER NOT NULL, h TEXT NOT NULL, r TEXT NOT NULL, v BLOB NOT NULL,"
            " PRIMARY KEY (t, h, r)) WITHOUT ROWID"
        )
        connection.execute("CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
        connection.execute("INSERT INTO owners (name) VALUES ('dynamodb/t')")
        connection.execute("INSERT INTO items VALUES (1, 'Sold', '', x'01')")
        connection.execute("PRAGMA user_version=1")
    store = Store(path, persistent=True)
    items = DiskItems(store.owner_for("dynamodb/t"), False, store)
    assert items.owner == 1 and items.get_row("Sold", "") == b"\x01"
    store.connection.execute("INSERT OR REPLACE INTO items (t, h, r, v) VALUES (1, 'Sold', '', x'02')")
    assert items.get_row("Sold", "") == b"\x02" and items.count() == 1
    store.close()
    assert _layout(path) == (1, [])
