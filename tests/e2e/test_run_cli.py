"""End-to-end runs of the `tripstream` command line (the README's main job)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from support.cli import local_environment, run_cli
from tripstream.aws.dynamodb import scan_all
from tripstream.infra.template import load_template, resource_names

pytestmark = pytest.mark.e2e

TABLES = ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")


def test_template_names_are_the_fixed_ones() -> None:
    names = set(resource_names(load_template()).values())
    assert {"taxi_trips", *TABLES, "lambda-kinesis-producer", "lambda-kinesis-consumer"} <= names


def test_run_without_a_file_generates_a_sample_and_accounts_for_every_trip(aws_env: None) -> None:
    """The README's first command, on the embedded emulator it starts and stops itself."""
    result = run_cli("run", "--rows", "400", "--seed", "7", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == 400
    assert summary["records_sent"] + sum(summary["rows_rejected"].values()) == summary["rows_read"]
    assert summary["records_consumed"] == summary["records_sent"]
    assert summary["trips_processed"] == summary["records_sent"]
    # The generator writes 0.2% of dropoffs before the pickup and 0.1% over a day: not every trip has a duration.
    assert 0 < summary["table_items"]["trip_duration_analysis"] <= 400
    assert sum(summary["duration_categories"].values()) == summary["table_items"]["trip_duration_analysis"]
    assert "embedded emulator" in result.stderr


def test_the_generated_sample_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run_cli("generate", str(first), "--rows", "50", "--seed", "3").returncode == 0
    assert run_cli("generate", str(second), "--rows", "50", "--seed", "3").returncode == 0
    assert first.read_bytes() == second.read_bytes()
    assert len(first.read_text().splitlines()) == 51


def test_endpoint_url_leaves_resources_and_data_and_redeploys(fresh_endpoint: str, tmp_path: Path) -> None:
    """Against an endpoint that is already running, the tables keep what the run wrote; a second run of the
    same file deploys nothing new and duplicates nothing."""
    sample = tmp_path / "trips.csv"
    assert run_cli("generate", str(sample), "--rows", "200", "--seed", "11").returncode == 0
    state = tmp_path / "state"
    first = run_cli("run", str(sample), "--endpoint-url", fresh_endpoint, "--state-dir", str(state), "--json")
    assert first.returncode == 0, first.stderr
    assert "deployed" in first.stderr
    second = run_cli("run", str(sample), "--endpoint-url", fresh_endpoint, "--state-dir", str(state), "--json")
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stderr

    dynamodb = boto3.client("dynamodb", endpoint_url=fresh_endpoint, region_name="us-east-1")
    summary = json.loads(second.stdout)
    for table in TABLES:
        items = scan_all(dynamodb, table)
        assert len(items) == len({item["trip_id"] for item in items})
        assert len(items) == summary["table_items"][table] == json.loads(first.stdout)["table_items"][table]
    statement = "SELECT trip_id FROM high_value_trips WHERE total_amount > 50"
    found = dynamodb.execute_statement(Statement=statement)["Items"]
    assert len(found) == summary["table_items"]["high_value_trips"] > 0


def test_a_file_without_time_columns_is_refused_with_exit_code_3(fresh_endpoint: str, tmp_path: Path) -> None:
    bad = tmp_path / "no_times.csv"
    bad.write_text("VendorID,trip_distance,fare_amount\n1,2.5,10\n")
    result = run_cli("run", str(bad), "--endpoint-url", fresh_endpoint, "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 3, result.stdout + result.stderr
    # One message on stderr, before anything is deployed or sent.
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert "no_times.csv" in result.stderr and "pickup" in result.stderr and "dropoff" in result.stderr
    kinesis = boto3.client("kinesis", endpoint_url=fresh_endpoint, region_name="us-east-1")
    assert kinesis.list_streams()["StreamNames"] == []


def test_sigterm_stops_a_run_like_ctrl_c_with_a_summary_and_nothing_left_behind(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "tripstream.cli", "run", "--rows", "400000", "--progress"],
        env=local_environment({"TMPDIR": str(scratch)}),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stderr is not None
        seen = []
        for line in child.stderr:  # until the pipeline is running
            seen.append(line)
            if line.startswith("stack "):
                break
        time.sleep(2)
        child.send_signal(signal.SIGTERM)
        _, rest = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    stderr = "".join(seen) + rest
    assert child.returncode == 1, stderr
    assert "run interrupted: rows read" in stderr and "Traceback" not in stderr, stderr
    assert list(scratch.iterdir()) == []  # the temporary folder (sample, emulator log) is gone
    leftovers = [p for p in Path("/proc").glob("[0-9]*") if str(scratch) in _cmdline(p)]
    assert leftovers == []  # and so is the emulator


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("path", ["/etc/passwd", "/dev/zero"])
def test_a_file_that_is_no_trip_file_is_refused_at_once(path: str, aws_env: None) -> None:
    """Checked before any emulator starts: /dev/zero is never read, /etc/passwd refused at its header."""
    import time

    started = time.monotonic()
    result = run_cli("run", path, "--json", timeout=30)
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["refused"]  # --json: one document on stdout, whatever happens
    assert result.stderr.startswith(f"REFUSED {path}: ") and len(result.stderr.splitlines()) == 1, result.stderr
    assert time.monotonic() - started < 10  # a process start; no emulator, no deploy


@pytest.mark.parametrize(
    "command",
    [["run", "--rows", "5"], ["replay", "TRIPS"], ["query", "SELECT * FROM high_value_trips"], ["report"], ["status"]],
)
def test_an_endpoint_that_does_not_answer_is_one_line_and_exit_1(
    command: list[str], aws_env: None, tmp_path: Path
) -> None:
    from support.trips import trips_file

    trips = str(trips_file(tmp_path / "trips.csv", 5))
    args = [trips if arg == "TRIPS" else arg for arg in command]
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "TRIPSTREAM_ZONES": "none"}
    result = run_cli(*args, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    with_debug = run_cli("--debug", *args, env=env, timeout=120)
    assert with_debug.returncode == 1 and "Traceback" in with_debug.stderr


def test_a_statement_the_emulator_cannot_parse_exits_2(fresh_endpoint: str) -> None:
    result = run_cli("query", "SELEKT nothing FROM", "--endpoint-url", fresh_endpoint)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_run_on_an_on_demand_stream(fresh_endpoint: str, tmp_path: Path) -> None:
    """StreamMode=ON_DEMAND: no ShardCount, Kinesis picks the shards; the local runtime reads them all."""
    result = run_cli(
        "run", "--rows", "200", "--parameter", "StreamMode=ON_DEMAND", "--endpoint-url", fresh_endpoint,
        "--state-dir", str(tmp_path / "s"), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["records_consumed"] == summary["records_sent"] == 200
    kinesis = boto3.client("kinesis", endpoint_url=fresh_endpoint, region_name="us-east-1")
    described = kinesis.describe_stream_summary(StreamName="taxi_trips")["StreamDescriptionSummary"]
    assert described["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
