"""`tripstream up`, then `run --progress`, `report`, `query`, `replay` (stopped with Ctrl-C) against it, then `up`
stopped and started again with the same --state-dir: the README's "see the results" walkthrough, as subprocesses.

The tests of this module run in order and share one `up` (its endpoint, its tables).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from report_oracle import (
    ZONES_CSV,
    check_aggregates,
    check_report,
    expected_aggregates,
    expected_numbers,
    read_trips,
    read_zones,
)
from support.trips import trips_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROWS = 300
CLI = [sys.executable, "-m", "tripstream.cli"]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # No profile files, no instance metadata: nothing but what a test gives the CLI.
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        TRIPSTREAM_ZONES=str(ZONES_CSV),  # never the download
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Up:
    process: subprocess.Popen[str]
    env: dict[str, str]  # base_env + the exports `up` printed
    workdir: Path
    state_dir: Path
    file: Path


def start_up(workdir: Path, state_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str], str]:
    env_file = workdir / f"env-{time.monotonic_ns()}"
    process = subprocess.Popen(
        [*CLI, "up", "--port", "0", "--state-dir", str(state_dir), "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base_env(),
        cwd=workdir,
    )
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"`tripstream up` did not come up: {out}\n{err}")
        time.sleep(0.2)
    exports = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = value
    banner = ""
    assert process.stdout is not None
    while "Ctrl-C stops it" not in banner:  # the banner is printed after the env file is written
        line = process.stdout.readline()
        if not line:
            break
        banner += line
    return process, base_env() | exports, banner


def stop_up(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


def cli(
    up: Up, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else up.env,
        cwd=up.workdir,
        check=False,
    )


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    workdir = tmp_path_factory.mktemp("up")
    trips = workdir / "taxi_trips.csv"
    trips_file(trips, ROWS, seed=2019)
    process, env, banner = start_up(workdir, workdir / "state")
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in banner and "tables  high_value_trips" in banner
    handle = Up(process, env, workdir, workdir / "state", trips)
    yield handle
    if handle.process.poll() is None:
        stop_up(handle.process)


def test_run_shows_progress_and_prints_json(up: Up) -> None:
    result = cli(up, "run", str(up.file), "--json", "--progress")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == ROWS and summary["records_consumed"] == ROWS
    # stderr is not a terminal: plain progress lines, the last one marked done.
    progress = [line for line in result.stderr.splitlines() if "rows read" in line]
    assert progress and progress[-1].endswith("done")
    assert f"rows read {ROWS:,}/{ROWS:,}" in progress[-1] and f"records consumed {ROWS:,}" in progress[-1]


def test_report_json_and_html_show_the_files_numbers(up: Up) -> None:
    html = up.workdir / "report.html"
    result = cli(up, "report", "--json", "--html", str(html))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout, parse_float=Decimal)
    check_report(report, expected_numbers(read_trips(up.file)), read_zones())
    assert report["zones"] == str(ZONES_CSV)
    aggregates = report["aggregates"]
    check_aggregates(aggregates, expected_aggregates(read_trips(up.file)), read_zones())  # kept by the consumer
    page = html.read_text()
    # The per-trip charts, trips per hour of day, and the heatmap once there are cells.
    charts = 6 + 1 + 1
    assert page.startswith("<!DOCTYPE html>") and page.count('<svg class="chart"') == charts


def test_report_prints_tables_on_a_terminal_width(up: Up) -> None:
    result = cli(up, "report", env=up.env | {"COLUMNS": "140"})
    assert result.returncode == 0, result.stderr
    for text in ("Totals", "Trip duration (median", "by pickup hour", "Queens / JFK Airport (132)", "Most profitable"):
        assert text in result.stdout


def test_query_prints_table_json_and_csv(up: Up) -> None:
    statement = "SELECT trip_id, total_amount, pickup_location_id FROM high_value_trips WHERE total_amount > 60"
    expected = sorted(t.total for t in read_trips(up.file).trips if t.total and t.total > 60)
    as_json = cli(up, "query", statement, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout, parse_float=Decimal)
    assert sorted(row["total_amount"] for row in rows) == expected
    assert all(row["pickup_zone"] for row in rows if row["pickup_location_id"] == 132)
    as_csv = cli(up, "query", statement, "--format", "csv")
    lines = as_csv.stdout.splitlines()
    assert lines[0] == "trip_id,total_amount,pickup_location_id,pickup_zone" and len(lines) == len(expected) + 1
    table = cli(up, "query", statement)
    assert table.returncode == 0 and "total_amount" in table.stdout and f"{len(expected)} rows" in table.stderr


def test_query_and_report_errors_have_exit_codes(up: Up) -> None:
    missing = cli(up, "query", "SELECT * FROM no_such_table")
    assert missing.returncode == 2 and "not found" in missing.stderr, missing.stderr
    nowhere = cli(up, "report", env=base_env())  # no endpoint and no credentials
    assert nowhere.returncode == 2 and "tripstream up" in nowhere.stderr
    bad_zones = cli(up, "report", "--zones", str(up.workdir / "missing.csv"))
    assert bad_zones.returncode == 2 and "--zones" in bad_zones.stderr


def test_replay_stops_cleanly_on_ctrl_c(up: Up) -> None:
    process = subprocess.Popen(
        [*CLI, "replay", str(up.file), "--speed", "60", "--max-wait", "0.5", "--json", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=up.env,
        cwd=up.workdir,
    )
    assert process.stderr is not None
    seen = ""
    while "trips to send" not in seen:
        line = process.stderr.readline()
        assert line, f"replay ended early: {seen}"
        seen += line
    time.sleep(3)  # a few sends at 60x with half-second gaps
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, seen + err
    summary = json.loads(out)
    assert summary["interrupted"] and "stopping replay" in err
    assert 0 < summary["records_sent"] < summary["trips_to_send"] == ROWS
    # `up` is live: its runtime consumed what was sent, not a second consumer of the replay's own.
    assert summary["consumed_by_live_up"] and summary["records_consumed"] == 0
    assert summary["items_written"] == {}


def _counted_trips(up: Up) -> int:
    result = cli(up, "query", "SELECT trips FROM zone_hourly_stats", "--format", "csv")
    assert result.returncode == 0, result.stderr
    return sum(int(line) for line in result.stdout.splitlines()[1:])


def test_up_keeps_the_data_across_a_restart(up: Up) -> None:
    counted = _counted_trips(up)
    assert counted == expected_aggregates(read_trips(up.file))["trips"]
    code, err = stop_up(up.process)
    assert code == 0, err
    assert "saved to" in err and (up.state_dir / "snapshot" / "snapshot.json").is_file()
    up.process, up.env, banner = start_up(up.workdir, up.state_dir)
    assert "tripstream is up" in banner
    result = cli(up, "query", "SELECT trip_id FROM trip_duration_analysis", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) - 1 == len(read_trips(up.file).timed)
    assert _counted_trips(up) == counted  # the aggregates and their markers come back too
    code, err = stop_up(up.process)
    assert code == 0 and "restored from" in err, err
