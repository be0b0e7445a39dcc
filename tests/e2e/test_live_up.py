"""`tripstream up` as a live stack: a real `up` process, fed with the AWS CLI and boto3 (never tripstream's upload
code), checked item by item against the independent reference (tests/expected.py)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from support.cli import reset_emulator
from support.live_up import Up, assert_tables_hold, running_up, tables_hold, wait_for
from tripstream.trips.generate import write_sample
from tripstream.trips.schema import SCHEMA_VERSION

pytestmark = [pytest.mark.e2e]


def sample(path: Path, rows: int, seed: int) -> Path:
    write_sample(path, rows, seed=seed)
    return path


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    yield from running_up(tmp_path_factory.mktemp("live-up"))


def test_aws_cli_upload_reaches_the_tables(up: Up, tmp_path: Path) -> None:
    path = sample(tmp_path / "taxi_trips.csv", 80, 101)
    up.aws("s3", "cp", str(path), f"s3://{up.bucket}/taxi_trips.csv")
    result = wait_for(lambda: up.result("taxi_trips.csv"), "the result")
    assert result["drained"] and not result["gave_up"]
    assert_tables_hold(up, path)
    assert "taxi_trips.csv: 80 rows read, 80 sent, 0 rejected" in up.output()


def test_overwrite_is_processed_again(up: Up, tmp_path: Path) -> None:
    first, second = (sample(tmp_path / f"v{n}.csv", 30, 200 + n) for n in (1, 2))
    s3 = up.client("s3")
    etags = []
    for path in (first, second):
        s3.upload_file(str(path), up.bucket, "same key.csv")
        etags.append(s3.head_object(Bucket=up.bucket, Key="same key.csv")["ETag"].strip('"'))
        wait_for(lambda: up.result("same key.csv", etags[-1]), "the result")
    assert all(up.result("same key.csv", etag) for etag in etags)
    assert up.output().count("same key.csv: 30 rows read, 30 sent") == 2
    assert_tables_hold(up, first)
    assert_tables_hold(up, second)


def test_multipart_upload_is_processed_once(up: Up, tmp_path: Path) -> None:
    # Two parts (the first at least 5 MiB): the trips, then blank lines, which the producer skips.
    path = sample(tmp_path / "multi.csv", 60, 300)
    body = path.read_bytes() + b"\n" * (6 << 20)
    s3 = up.client("s3")
    upload = s3.create_multipart_upload(Bucket=up.bucket, Key="multi.csv")
    parts = []
    for number, chunk in enumerate((body[: 5 << 20], body[5 << 20 :]), start=1):
        answer = s3.upload_part(
            Bucket=up.bucket, Key="multi.csv", UploadId=upload["UploadId"], PartNumber=number, Body=chunk
        )
        parts.append({"ETag": answer["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=up.bucket, Key="multi.csv", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    result = wait_for(lambda: up.result("multi.csv"), "the result")
    assert result["etag"].endswith("-2")
    time.sleep(2)  # a second (duplicate) event would be processed by now
    assert up.output().count("multi.csv: 60 rows read, 60 sent") == 1
    assert_tables_hold(up, path)


def test_record_put_directly_is_consumed(up: Up) -> None:
    trip = {
        "schema_version": SCHEMA_VERSION,
        "trip_id": "put-by-boto3-1",
        "pickup_datetime": "2024-01-05T10:00:00",
        "dropoff_datetime": "2024-01-05T10:20:00",
        "trip_distance": 5.0,
        "fare_amount": 60.0,
        "total_amount": 75.5,
    }
    up.client("kinesis").put_record(StreamName="taxi_trips", Data=orjson.dumps(trip), PartitionKey="put-by-boto3-1")
    wait_for(lambda: "put-by-boto3-1" in up.items("high_value_trips"), "the item")
    duration = wait_for(lambda: up.items("trip_duration_analysis").get("put-by-boto3-1"), "the duration item")
    assert duration["duration_category"] == "medium" and Decimal(str(duration["duration_minutes"])) == 20


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("garbage.csv", b"\x00\x01\x02 not a trip file \xff"),
        ("empty.csv", b""),
        ("odd/a b+c%d é.csv", b"no,time,columns\n1,2,3\n"),
    ],
)
def test_bad_objects_get_a_reject_report_and_up_keeps_serving(up: Up, key: str, body: bytes) -> None:
    up.client("s3").put_object(Bucket=up.bucket, Key=key, Body=body)
    result = wait_for(lambda: up.result(key), "the result")
    assert not result["gave_up"], result
    refused = [r for r in result["results"] if r.get("refused")]
    assert refused, result
    rejects = up.client("s3").list_objects_v2(Bucket=up.bucket, Prefix=f"rejects/producer/{key}/")
    assert rejects.get("KeyCount", 0) >= 1
    assert up.process is not None and up.process.poll() is None


def test_kill_9_mid_file_then_restart_loses_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Up(tmp_path, state).start()
    path = sample(tmp_path / "big.csv", 4000, 400)
    try:
        first.client("s3").upload_file(str(path), first.bucket, "big.csv")
        wait_for(lambda: first.items("trip_duration_analysis"), "the first items", 120)
        assert first.result("big.csv") is None  # still being processed
    finally:
        first.stop(signal.SIGKILL)
    second = Up(tmp_path, state).start()
    try:
        wait_for(lambda: second.result("big.csv"), "the result after the restart", 240)
        wait_for(lambda: tables_hold(second, path), "every item", 60)
        assert_tables_hold(second, path)
    finally:
        second.stop()


def test_up_attaches_to_a_stack_at_another_endpoint(emulator_endpoint: str, tmp_path: Path) -> None:
    """`up --endpoint-url`: no emulator of its own; the live runtime serves the stack at that endpoint."""
    reset_emulator(emulator_endpoint)
    attached = Up(tmp_path, tmp_path / "state", "--endpoint-url", emulator_endpoint).start()
    try:
        assert attached.env["AWS_ENDPOINT_URL"] == emulator_endpoint
        assert "embedded" not in attached.output() and "emulator at" not in attached.output()
        path = sample(tmp_path / "taxi_trips.csv", 40, 404)
        attached.client("s3").upload_file(str(path), attached.bucket, "taxi_trips.csv")
        result = wait_for(lambda: attached.result("taxi_trips.csv"), "the result")
        assert result["drained"] and not result["gave_up"]
        assert_tables_hold(attached, path)
    finally:
        attached.stop()
    assert "stopped" in attached.output()
    assert not (tmp_path / "state" / "snapshot").exists()  # the endpoint keeps its own data
