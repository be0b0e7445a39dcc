"""`tripstream up` as a live stack: a real `up` process, fed with the AWS CLI and boto3 (never tripstream's upload
code), checked item by item against the independent reference (tests/expected.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config

from expected import expected_for  # tests/expected.py, the independent reference
from support.cli import reset_emulator
from tripstream.trips.generate import write_sample
from tripstream.trips.schema import SCHEMA_VERSION

pytestmark = [pytest.mark.e2e]

TESTS = Path(__file__).resolve().parents[1]
TABLES = ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")
RESULTS_PREFIX = "tripstream-live/results/"  # where `up` reports on each object (local.notifications)


def sample(path: Path, rows: int, seed: int) -> Path:
    write_sample(path, rows, seed=seed)
    return path


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Up:
    """A real `python -m tripstream.cli up` process on a free port."""

    def __init__(self, folder: Path, state_dir: Path | None = None, *options: str) -> None:
        self.folder, self.state_dir, self.options = folder, state_dir, list(options)
        self.log = folder / "up.log"
        self.env_file = folder / "up.env"
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def start(self) -> Up:
        self.env_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "tripstream.cli", "up", "--port", "0", "--env-file", str(self.env_file)]
        command += ["--status-seconds", "1"] + (["--state-dir", str(self.state_dir)] if self.state_dir else [])
        command += self.options
        environment = {n: v for n, v in os.environ.items() if not n.startswith("AWS_")}
        environment["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)])
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        before = self.output().count("live: S3 events")  # a restart appends to the same log
        process = self.process
        try:
            wait_for(lambda: self.output().count("live: S3 events") > before or process.poll() is not None, "up", 90)
            assert process.poll() is None, self.output()
        except BaseException:
            self.stop(signal.SIGKILL)  # never leave an `up` behind
            raise
        exports = [line.removeprefix("export ").split("=", 1) for line in self.env_file.read_text().splitlines()]
        self.env = {**environment, **dict(exports)}
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}),
        )

    @property
    def bucket(self) -> str:
        return next(line.split()[1] for line in self.output().splitlines() if line.strip().startswith("bucket "))

    def aws(self, *args: str) -> None:
        aws = shutil.which("aws")
        command = [aws, *args] if aws else [sys.executable, "-m", "awscli", *args]
        subprocess.run(command, env=self.env, check=True, capture_output=True, timeout=120)

    def result(self, key: str, etag: str | None = None) -> dict[str, Any] | None:
        """`up`'s report on the object (its current ETag by default), once it finished it."""
        s3 = self.client("s3")
        etag = etag or s3.head_object(Bucket=self.bucket, Key=key)["ETag"].strip('"')
        at = f"{RESULTS_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:40]}/{etag}.json"
        try:
            return dict(orjson.loads(s3.get_object(Bucket=self.bucket, Key=at)["Body"].read()))
        except s3.exceptions.NoSuchKey:
            return None

    def items(self, table: str) -> dict[str, dict[str, Any]]:
        dynamodb = boto3.resource(
            "dynamodb",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = dynamodb.Table(table).scan(**kwargs)
            found += page["Items"]
            if "LastEvaluatedKey" not in page:
                return {str(item["trip_id"]): item for item in found}
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(60)


def assert_tables_hold(up: Up, path: Path) -> None:
    """Every expected item of `path` is in its table with the reference's values."""
    reference = expected_for(path).tables
    for table in TABLES:
        items = up.items(table)
        for trip_id, expected in reference[table].items():
            assert trip_id in items, (table, trip_id)
            for name, value in expected.items():
                actual = items[trip_id][name]
                assert (Decimal(str(actual)) if isinstance(value, Decimal) else actual) == value, (table, name)


def tables_hold(up: Up, path: Path) -> bool:
    reference = expected_for(path).tables
    return all(set(reference[table]) <= set(up.items(table)) for table in TABLES)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    running = Up(tmp_path_factory.mktemp("live-up")).start()
    yield running
    running.stop()
    assert "stopped" in running.output()


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
