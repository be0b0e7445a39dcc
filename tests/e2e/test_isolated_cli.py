"""`up` and `replay` as a user runs them, with the functions run as Lambda runs them (the deployment package in
processes of their own, each under its role: not TRIPSTREAM_IN_PROCESS, which the rest of the suite sets for speed),
checked against the independent reference (tests/expected.py): every per-trip table and the aggregates exact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from support.cli import local_environment
from support.live_up import Up, wait_for
from support.processes import assert_exact, cli, clients_of
from support.trips import trips_file
from tripstream.local.commands.resources import ProcessTreeSampler
from tripstream.local.emulator.server import set_iam_enforcement
from tripstream.local.lambda_service.events import s3_object_created_event

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ISOLATED = {"TRIPSTREAM_IN_PROCESS": "0"}
ROWS = 150


def function_processes(sampler: ProcessTreeSampler) -> int:
    """How many of the sampled processes were Lambda execution environments (`python -m awslambdaric <Handler>`)."""
    return sum(usage.name == "awslambdaric" for usage in sampler.usage())


def printed_exports(output: str) -> dict[str, str]:
    """The `export NAME=value` lines `up` prints for the user's own clients."""
    lines = [line.strip().removeprefix("export ") for line in output.splitlines() if line.strip().startswith("export ")]
    return dict(line.split("=", 1) for line in lines)


def test_up_serves_a_plain_boto3_upload_and_asynchronous_invocation_with_isolated_functions(tmp_path: Path) -> None:
    up = Up(tmp_path, env=ISOLATED).start()
    try:
        exports = printed_exports(up.output())
        s3 = boto3.client(
            "s3",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )
        path = trips_file(tmp_path / "taxi_trips.csv", ROWS, seed=2201)
        s3.upload_file(str(path), exports["TRIPSTREAM_BUCKET"], "taxi_trips.csv")
        result = wait_for(lambda: up.result("taxi_trips.csv"), "the result", 120)
        assert result["drained"] and not result["gave_up"], result
        assert_exact(clients_of(exports["AWS_ENDPOINT_URL"]), path)
        assert up.process is not None
        sampler = ProcessTreeSampler(up.process.pid)
        sampler.sample()
        assert function_processes(sampler) >= 2  # the producer's and the consumer's, kept warm

        # Lambda runs every asynchronous invocation: the user's own of the producer, on the same object's event.
        keys = {
            "endpoint_url": exports["AWS_ENDPOINT_URL"],
            "region_name": exports["AWS_DEFAULT_REGION"],
            "aws_access_key_id": exports["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": exports["AWS_SECRET_ACCESS_KEY"],
        }
        lambda_ = boto3.client("lambda", **keys)
        (producer,) = [
            f["FunctionName"] for f in lambda_.list_functions()["Functions"] if "producer" in f["FunctionName"]
        ]
        head = s3.head_object(Bucket=exports["TRIPSTREAM_BUCKET"], Key="taxi_trips.csv")
        event = s3_object_created_event(
            bucket=exports["TRIPSTREAM_BUCKET"],
            key="taxi_trips.csv",
            size=head["ContentLength"],
            etag=head["ETag"].strip('"'),
            region=exports["AWS_DEFAULT_REGION"],
            account_id="123456789012",
            sequencer="1",
        )
        answer = lambda_.invoke(FunctionName=producer, InvocationType="Event", Payload=json.dumps(event).encode())
        assert answer["StatusCode"] == 202

        def invoked_line() -> str | None:
            return next((line for line in up.output().splitlines() if "asynchronous invocation of" in line), None)

        line = wait_for(invoked_line, "the asynchronous invocation's line", 90)
        assert f"asynchronous invocation of {producer}: {ROWS} rows read, {ROWS} sent, 0 rejected" in line
        assert_exact(clients_of(exports["AWS_ENDPOINT_URL"]), path)  # sent again: the same items, counted once
    finally:
        up.stop()
    output = up.output()
    assert "stopped" in output
    assert "could not issue" not in output, output  # each function had its role's credentials


def test_replay_with_isolated_functions_consumes_the_stream_exactly(fresh_endpoint: str, tmp_path: Path) -> None:
    """`replay` consumes what it sends with its own (isolated) consumer, against an endpoint that outlives it; IAM
    enforced there, as `up` and `run` enforce it in their embedded emulator (its own key stays an administrator)."""
    path = trips_file(tmp_path / "taxi_trips.csv", ROWS, seed=2202)
    set_iam_enforcement(fresh_endpoint, True)
    try:
        command = cli(
            "replay",
            str(path),
            "--endpoint-url",
            fresh_endpoint,
            "--state-dir",
            str(tmp_path / "state"),
            "--speed",
            "100000",
            "--max-wait",
            "0.01",
            "--json",
            "--no-progress",
        )
        env = local_environment(ISOLATED)
        with (
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as run,
            ProcessTreeSampler(run.pid, interval=0.2) as sampler,
        ):
            stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stdout + stderr
        assert function_processes(sampler) >= 1  # the consumer, as Lambda runs it
        summary = json.loads(stdout)
        assert summary["records_sent"] == ROWS and summary["records_consumed"] == ROWS, summary
        assert "could not issue" not in stderr, stderr  # each function had its role
        assert_exact(clients_of(fresh_endpoint), path)
    finally:
        set_iam_enforcement(fresh_endpoint, False)
