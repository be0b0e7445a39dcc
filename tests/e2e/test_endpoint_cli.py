"""README "Another endpoint", run as written: a moto server without tripstream's fixes is refused at once, in one
line that names the cause and what to use instead; `tripstream emulator` serves the patched one, and a run
against it is exact."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from support.cli import local_environment
from support.processes import assert_exact, cli, clients_of, patched_emulator, plain_moto
from support.trips import trips_file

pytestmark = [pytest.mark.e2e]

REFUSED_WITHIN_SECONDS = 10


def run_against(
    path: Path, endpoint_url: str | None, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    args = [*(["--endpoint-url", endpoint_url] if endpoint_url else []), *extra]
    result = subprocess.run(
        cli("run", str(path), *args),
        capture_output=True,
        text=True,
        env=local_environment(env),
        timeout=300,
        check=False,
    )
    return result, time.monotonic() - started


def test_a_plain_moto_server_is_refused_at_once_in_one_line(tmp_path: Path) -> None:
    path = trips_file(tmp_path / "taxi_trips.csv", 50, seed=1)
    with plain_moto(tmp_path / "moto.log") as url:
        result, seconds = run_against(path, url)
        dynamodb_only, dynamodb_seconds = run_against(path, None, env={"AWS_ENDPOINT_URL_DYNAMODB": url})
    assert result.returncode == 2, result.stderr
    assert seconds < REFUSED_WITHIN_SECONDS
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {url} is a moto server without tripstream's fixes (its Kinesis loses records under concurrent "
        "writers; its TransactWriteItems fails under concurrent writes (HTTP 500), which stalls the aggregates): "
        f"serve tripstream's patched moto there instead (`tripstream emulator --port {url.rsplit(':', 1)[1]}`), "
        "or run without an endpoint (the embedded emulator)"
    ], result.stderr
    # DynamoDB alone on a plain moto (the embedded emulator serving the rest): its transactions are the cause.
    assert dynamodb_only.returncode == 2, dynamodb_only.stderr
    assert dynamodb_seconds < REFUSED_WITHIN_SECONDS
    (line,) = [line for line in dynamodb_only.stderr.splitlines() if line.startswith("error:")]
    assert "TransactWriteItems" in line and "Kinesis" not in line and "--backend dynamodb-local" in line


@pytest.mark.usefixtures("dynamodb_local_required")
def test_moto_for_the_rest_with_dynamodb_local_is_refused_for_its_kinesis(tmp_path: Path) -> None:
    """LocalStack-style: DynamoDB on DynamoDB Local (its transactions are right), the rest on a plain moto,
    whose Kinesis loses records under concurrent writers."""
    path = trips_file(tmp_path / "taxi_trips.csv", 50, seed=1)
    with plain_moto(tmp_path / "moto.log") as url:
        result, seconds = run_against(path, url, "--backend", "dynamodb-local")
    assert result.returncode == 2, result.stderr
    assert seconds < REFUSED_WITHIN_SECONDS
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "its Kinesis loses records" in line and "TransactWriteItems" not in line


@pytest.mark.slow
def test_the_patched_emulator_served_standalone_runs_exact(tmp_path: Path) -> None:
    path = trips_file(tmp_path / "taxi_trips.csv", 300, seed=23)
    with patched_emulator(tmp_path / "emulator.log") as url:
        result, _ = run_against(path, url, "--state-dir", str(tmp_path / "state"), "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["records_consumed"] == summary["records_sent"] > 0
        assert_exact(clients_of(url), path)
