"""A real `tripstream up` process for the end-to-end tests, fed with the AWS CLI and boto3 (never tripstream's upload
code), and the checks of its tables against the independent reference (tests/expected.py)."""

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
from botocore.config import Config

from expected import expected_aggregates, expected_for  # tests/expected.py, the independent reference
from support.faults import ENVIRONMENT_VARIABLE as FAULTS_VARIABLE

TESTS = Path(__file__).resolve().parents[1]
TABLES = ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")
RESULTS_PREFIX = "tripstream-live/results/"  # where `up` reports on each object (local.notifications)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Up:
    """A real `python -m tripstream.cli up` process on a free port."""

    def __init__(
        self,
        folder: Path,
        state_dir: Path | None = None,
        *options: str,
        env: dict[str, str] | None = None,
        faults: str | None = None,
    ) -> None:
        """`env`: added to the process's environment (e.g. TRIPSTREAM_IN_PROCESS=0 for isolated functions); `faults`:
        a fault plan (support.faults, as JSON) for the handlers' clients (with --in-process: the consumer's, in `up`'s
        process)."""
        self.folder, self.state_dir, self.options = folder, state_dir, list(options)
        self.extra_env, self.faults = env or {}, faults
        self.log = folder / "up.log"
        self.env_file = folder / "up.env"
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def start(self) -> Up:
        self.env_file.unlink(missing_ok=True)
        cli = "support.cli_with_faults" if self.faults else "tripstream.cli"
        command = [sys.executable, "-m", cli, "up", "--port", "0", "--env-file", str(self.env_file)]
        command += ["--status-seconds", "1"] + (["--state-dir", str(self.state_dir)] if self.state_dir else [])
        command += self.options
        environment = {n: v for n, v in os.environ.items() if not n.startswith("AWS_")}
        environment["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)])
        environment.pop(FAULTS_VARIABLE, None)
        if self.faults:
            environment[FAULTS_VARIABLE] = self.faults
        environment.update(self.extra_env)
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

    def endpoint(self, service: str) -> str:
        """Where `up` said `service` is (DynamoDB Local's own with --backend dynamodb-local)."""
        return self.env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or self.env["AWS_ENDPOINT_URL"]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint(service),
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
            endpoint_url=self.endpoint("dynamodb"),
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

    def cells(self) -> dict[tuple[str, str], dict[str, Any]]:
        """zone_hourly_stats: (zone, hour) -> its counters (Decimal), as tests/expected.py's cells."""
        dynamodb = self.client("dynamodb")
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        for page in dynamodb.get_paginator("scan").paginate(TableName="zone_hourly_stats"):
            for item in page["Items"]:
                values = {name: Decimal(v["N"]) if "N" in v else v["S"] for name, v in item.items()}
                zone, hour = values.pop("pickup_location_id"), values.pop("pickup_hour")
                cells[(str(zone), str(hour))] = values
        return cells

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


def assert_reference_holds(up: Up, *paths: Path) -> None:
    """The three tables hold exactly the reference's items of `paths`, and zone_hourly_stats its cells."""
    references = [expected_for(path).tables for path in paths]
    for table in TABLES:
        assert set(up.items(table)) == {trip_id for ref in references for trip_id in ref[table]}, table
    for path in paths:
        assert_tables_hold(up, path)
    assert up.cells() == expected_aggregates(*paths)


def tables_hold(up: Up, path: Path) -> bool:
    reference = expected_for(path).tables
    return all(set(reference[table]) <= set(up.items(table)) for table in TABLES)


def running_up(folder: Path) -> Iterator[Up]:
    """An `up` in `folder` for as long as the caller (a module-scoped fixture) yields it; stopped cleanly after."""
    running = Up(folder).start()
    yield running
    running.stop()
    assert "stopped" in running.output()
