"""`up --state-dir`'s bucket snapshot (local.commands.snapshot) against the emulator: a save copies only the objects
it does not hold yet (an arrival costs its own object, not the data held), a restore gives the objects back with
their ETags, and a version 1 snapshot (tables saved beside the objects) is still read, then replaced by version 2."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.local.commands.snapshot import MANIFEST, SNAPSHOT_FOLDER, load_snapshot, save_snapshot

pytestmark = pytest.mark.integration


def _clients(endpoint_url: str) -> AwsClients:
    return AwsClients.create(endpoint_url=endpoint_url, region="us-east-1", credentials=EMULATOR_CREDENTIALS)


def _bucket(clients: AwsClients, name: str) -> Any:
    clients.s3.create_bucket(Bucket=name)
    return SimpleNamespace(bucket=name, tables={}, aggregate_tables={})


def _table(clients: AwsClients, name: str, items: int) -> str:
    """A table (created if need be) holding `items` items."""
    with contextlib.suppress(clients.dynamodb.exceptions.ResourceInUseException):
        clients.dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    for start in range(0, items, 25):
        requests = [{"PutRequest": {"Item": {"trip_id": {"S": f"t{n}"}}}} for n in range(start, min(items, start + 25))]
        clients.dynamodb.batch_write_item(RequestItems={name: requests})
    return name


def _files(state: Path) -> dict[str, tuple[int, int]]:
    """The snapshot's object files: name -> (inode, mtime in ns): a file written again changes."""
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (state / "snapshot/objects").iterdir()}


def _etags(clients: AwsClients, bucket: str) -> dict[str, str]:
    listing = clients.s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {entry["Key"]: entry["ETag"] for entry in listing}


def test_a_save_copies_only_the_objects_it_does_not_hold(emulator_endpoint: str, tmp_path: Path) -> None:
    clients, state = _clients(emulator_endpoint), tmp_path / "state"
    stack = _bucket(clients, "snapshot-incremental")
    # The stack's tables hold items (they live in the emulator's store): no save copies them.
    stack.tables = {"trips": _table(clients, "snapshot-incremental-trips", 200)}
    for key in ("a.csv", "b.csv"):
        clients.s3.put_object(Bucket=stack.bucket, Key=key, Body=key.encode() * 1000)
    first = save_snapshot(clients, stack, state)  # type: ignore[arg-type]
    assert (first.objects, first.downloaded) == (2, 2)
    before = _files(state)

    # An arrival: one more object. Only it is copied; the copies held are not written again.
    clients.s3.put_object(Bucket=stack.bucket, Key="c.csv", Body=b"c")
    _table(clients, "snapshot-incremental-trips", 400)  # and more items held
    second = save_snapshot(clients, stack, state)  # type: ignore[arg-type]
    assert (second.objects, second.downloaded, second.downloaded_bytes) == (3, 1, 1)
    after = _files(state)
    assert {name: after[name] for name in before} == before

    # Nothing new: nothing copied. An object overwritten: its new version copied, the old copy gone.
    assert save_snapshot(clients, stack, state).downloaded == 0  # type: ignore[arg-type]
    clients.s3.put_object(Bucket=stack.bucket, Key="a.csv", Body=b"a, version 2")
    clients.s3.delete_object(Bucket=stack.bucket, Key="b.csv")
    third = save_snapshot(clients, stack, state)  # type: ignore[arg-type]
    assert (third.objects, third.downloaded) == (2, 1)
    assert len(_files(state)) == 2
    assert sorted(path.name for path in (state / SNAPSHOT_FOLDER).iterdir()) == ["objects", MANIFEST]

    # Restored into a new bucket: the same objects, the same ETags (the live runtime's ledger knows them by it).
    restored_into = _bucket(clients, "snapshot-restored")
    info = load_snapshot(clients, restored_into, state)  # type: ignore[arg-type]
    assert info is not None and info.objects == 2
    assert _etags(clients, restored_into.bucket) == _etags(clients, stack.bucket)
    body = clients.s3.get_object(Bucket=restored_into.bucket, Key="a.csv")["Body"].read()
    assert body == b"a, version 2"


def test_a_version_1_snapshot_is_restored_and_then_saved_as_version_2(emulator_endpoint: str, tmp_path: Path) -> None:
    clients, state = _clients(emulator_endpoint), tmp_path / "state"
    stack = _bucket(clients, "snapshot-v1")
    stack.tables = {"trips": _table(clients, "snapshot-v1-trips", 0)}
    # What the previous tripstream wrote: every item as DynamoDB JSON, objects named by their key's hash.
    folder = state / SNAPSHOT_FOLDER
    (folder / "tables").mkdir(parents=True)
    (folder / "objects").mkdir()
    items = [{"trip_id": {"S": f"t{n}"}, "fare": {"N": str(n)}} for n in range(30)]
    (folder / "tables/trips.jsonl").write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    name = hashlib.sha256(b"taxi_trips.csv").hexdigest()
    (folder / "objects" / name).write_bytes(b"trips")
    manifest = {
        "version": 1,
        "saved_at": "2026-01-01T00:00:00+00:00",
        "bucket": stack.bucket,
        "tables": {"trips": {"table": "snapshot-v1-trips", "items": 30, "file": "tables/trips.jsonl"}},
        "objects": [{"key": "taxi_trips.csv", "file": f"objects/{name}", "size": 5}],
    }
    (folder / MANIFEST).write_bytes(orjson.dumps(manifest))

    restored = load_snapshot(clients, stack, state)  # type: ignore[arg-type]
    assert restored is not None and restored.items == {"trips": 30} and restored.objects == 1
    assert clients.dynamodb.scan(TableName="snapshot-v1-trips")["Count"] == 30
    assert clients.s3.get_object(Bucket=stack.bucket, Key="taxi_trips.csv")["Body"].read() == b"trips"

    save_snapshot(clients, stack, state)  # type: ignore[arg-type]
    saved = orjson.loads((folder / MANIFEST).read_bytes())
    assert saved["version"] == 2 and "tables" not in saved
    assert not (folder / "tables").exists() and not (folder / "objects" / name).exists()
    assert [entry["key"] for entry in saved["objects"]] == ["taxi_trips.csv"]
