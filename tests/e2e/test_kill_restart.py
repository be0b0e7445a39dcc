"""A `tripstream run` killed with SIGKILL in the middle of the stream, and started again, continues from its
checkpoints: nothing lost, nothing duplicated in the tables, and nothing before a checkpoint delivered again.

The AWS endpoint runs outside the killed process (the session's emulator), so the stream and the tables survive
the kill as they would on AWS. The fault layer slows the consumer down
(TRIPSTREAM_FAULTS: a delay before every BatchWriteItem call) so that the kill lands mid-stream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from expected import expected_for  # tests/expected.py, the independent reference
from support.faults import ENVIRONMENT_VARIABLE, FaultPlan
from support.harness import expected_run, stream_records, table_contents
from support.trips import trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.infra.stack import read_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[1]


def command(path: Path, endpoint_url: str, state: Path) -> list[str]:
    # The CLI with the fault plan of TRIPSTREAM_FAULTS installed on its handlers' clients (a test-only wrapper).
    return [
        sys.executable,
        "-m",
        "support.cli_with_faults",
        "run",
        str(path),
        "--endpoint-url",
        endpoint_url,
        "--state-dir",
        str(state),
        "--parameter",
        "BatchSize=25",
        "--parameter",
        "MaximumBatchingWindowInSeconds=0",
        "--json",
    ]


def checkpoints(state: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in (state / "checkpoints").glob("*/*.json"):
        try:
            saved = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:  # pragma: no cover - the store writes atomically; this would be a bug
            pytest.fail(f"torn checkpoint {path}")
        found[saved["shard_id"]] = int(saved["sequence_number"])
    return found


def test_sigkill_mid_stream_then_restart_continues_from_the_checkpoint(fresh_endpoint: str, tmp_path: Path) -> None:
    """The checkpoints are the local runtime's (the DynamoDB backend plays no part: moto only, to stay quick)."""
    emulator_url = fresh_endpoint
    path = trips_file(tmp_path / "taxi_trips.csv", 500, seed=2019)
    expected = expected_run(path)
    state = tmp_path / "state"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_ENDPOINT_URL") and name != ENVIRONMENT_VARIABLE
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))

    slow = {**env, ENVIRONMENT_VARIABLE: FaultPlan(seed=7, write_delay=0.05).to_json()}
    first = subprocess.Popen(
        command(path, emulator_url, state),
        env=slow,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 180
        while len(checkpoints(state)) < 2 or min(checkpoints(state).values()) < 1:  # both shards under way
            assert first.poll() is None, f"the run ended before the kill: {first.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL
    killed_after = time.monotonic() - started
    saved = checkpoints(state)

    clients = AwsClients.create(
        endpoint_url=emulator_url,
        region="us-east-1",
        credentials=EMULATOR_CREDENTIALS,
    )
    stack = read_stack(clients, "tripstream")
    before = stream_records(clients.kinesis, stack.stream_name)
    done_before = sum(
        1 for shard, records in before.items() for r in records if int(r["SequenceNumber"]) <= saved.get(shard, -1)
    )
    in_stream_before = sum(len(records) for records in before.values())
    assert 0 < done_before < in_stream_before, "the kill did not land in the middle of the stream"

    second = subprocess.run(
        command(path, emulator_url, state), env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert second.returncode == 0, second.stderr[-3000:]
    restarted_in = time.monotonic() - started - killed_after
    summary = json.loads(second.stdout)

    after = stream_records(clients.kinesis, stack.stream_name)
    in_stream_after = sum(len(records) for records in after.values())
    # The restarted run sent the file again (a re-upload: idempotent downstream) ...
    assert summary["records_sent"] == expected.records and in_stream_after == in_stream_before + expected.records
    # ... and its mapping started right after each shard's checkpoint: everything after it, nothing before.
    assert summary["records_consumed"] == in_stream_after - done_before
    assert summary["records_to_on_failure"] == 0
    lost = duplicated = 0
    reference = expected_for(path).tables  # tests/expected.py: the keys read from the CSV without tripstream
    for name, items in table_contents(clients, stack).items():
        ids = [item["trip_id"] for item in items]
        duplicated += len(ids) - len(set(ids))
        lost += len(set(reference[name]) - set(ids))
        assert set(ids) == set(reference[name]) == set(expected.items[name]), name
    print(
        f"\n[kill -9 and restart] {in_stream_before} records in the stream at the "
        f"kill, {done_before} of them checkpointed; the restart consumed {summary['records_consumed']} "
        f"(= {in_stream_after} - {done_before}); trips lost {lost}, duplicated {duplicated} "
        f"(killed after {killed_after:.1f} s; the restart took {restarted_in:.1f} s)"
    )
