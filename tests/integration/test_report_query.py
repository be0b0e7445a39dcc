"""The report, PartiQL queries and the replay against the emulator, after a real pipeline run.

One run of the first 500 rows of the real 2019 sample through the deployed stack; the report read back from
the tables (parallel scan) must show the numbers computed independently from the file (tests/report_oracle.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from report_oracle import (
    ZONES_CSV,
    Expected,
    check_aggregates,
    check_report,
    expected_aggregates,
    expected_numbers,
    read_trips,
    read_zones,
)
from support.cli import reset_emulator, run_cli
from support.trips import trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.cli.read import build_report as cli_build_report
from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime, stack_names
from tripstream.local.commands.replay import FeedOptions, replay_file
from tripstream.local.commands.run import run_file
from tripstream.views.aggregates import read_cells
from tripstream.views.query import execute
from tripstream.views.report import build_report
from tripstream.views.stack_report import ReportOptions
from tripstream.views.tables import read_tables
from tripstream.views.zones import parse_zone_lookup

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS = 500


@dataclass
class Pipeline:
    endpoint: str
    clients: AwsClients
    handler_clients: AwsClients
    stack: DeployedStack
    file: Path
    expected: Expected
    state_dir: Path  # shard checkpoints, shared by the run and the replay as the CLI shares .tripstream/


def _deploy(endpoint: str) -> tuple[AwsClients, AwsClients, DeployedStack]:
    clients = AwsClients.create(endpoint_url=endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    handler_clients = AwsClients.create(
        endpoint_url=endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS, max_attempts=1
    )
    stack, _ = deploy_for_local_runtime(clients)
    return clients, handler_clients, stack


@pytest.fixture(scope="module")
def pipeline(emulator_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    reset_emulator(emulator_endpoint)  # the table names are fixed: this module needs the endpoint to itself
    clients, handler_clients, stack = _deploy(emulator_endpoint)
    path = tmp_path_factory.mktemp("report") / "taxi_trips.csv"
    trips_file(path, ROWS, seed=2019)
    state_dir = path.parent / "state"
    summary = run_file(clients, handler_clients, stack, path, state_dir=state_dir)
    assert summary.ok and summary.records_consumed == ROWS
    expected = read_trips(path)
    yield Pipeline(emulator_endpoint, clients, handler_clients, stack, path, expected, state_dir)


def test_report_from_the_tables_matches_the_file(pipeline: Pipeline) -> None:
    names = stack_names(pipeline.clients.cloudformation, "tripstream").tables
    assert names == {name: name for name in ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")}
    items = read_tables(pipeline.clients.dynamodb, names, segments=4)
    zones = parse_zone_lookup(ZONES_CSV.read_bytes())
    report = build_report(items, zones=zones, tables=names)
    check_report(report, expected_numbers(pipeline.expected), read_zones())
    # The parallel scan read every item exactly once.
    assert len({i["trip_id"] for i in items.duration}) == len(items.duration)


def _cells_in_place(pipeline: Pipeline) -> str:
    """The aggregates table's name; the consumer wrote its cells during the run (the oracle checks them)."""
    table = stack_names(pipeline.clients.cloudformation, "tripstream").stats_table
    assert read_cells(pipeline.clients.dynamodb, table)
    return table


def test_report_reads_its_zone_and_hour_views_from_the_aggregates(pipeline: Pipeline, tmp_path: Path) -> None:
    table = _cells_in_place(pipeline)
    assert table == "zone_hourly_stats"
    page = tmp_path / "report.html"
    data = cli_build_report(pipeline.clients, "tripstream", str(ZONES_CSV), "emulator", ReportOptions(html_path=page))
    check_aggregates(data["aggregates"], expected_aggregates(pipeline.expected), read_zones())
    check_report(data, expected_numbers(pipeline.expected), read_zones())  # the per-trip sections as before
    assert data["tables"]["zone_hourly_stats"] == table
    assert 'data-chart="zone-hour-heatmap"' in page.read_text(encoding="utf-8")
    alone = cli_build_report(
        pipeline.clients, "tripstream", str(ZONES_CSV), "emulator", ReportOptions(aggregates_only=True)
    )
    assert "totals" not in alone and alone["aggregates"] == data["aggregates"]


def test_watch_once_prints_a_snapshot_of_the_aggregates(pipeline: Pipeline) -> None:
    _cells_in_place(pipeline)
    numbers = expected_aggregates(pipeline.expected)
    result = run_cli(
        "watch", "--once", "--endpoint-url", pipeline.endpoint, "--zones", str(ZONES_CSV), env={"COLUMNS": "160"}
    )
    assert result.returncode == 0, result.stderr
    assert f"{numbers['trips']:,} trips" in result.stdout and "Busiest pickup zones" in result.stdout
    zone = read_zones()[numbers["busiest"][0][0]][1]
    assert zone in result.stdout


def test_table_names_fall_back_to_the_fixed_ones(pipeline: Pipeline) -> None:
    assert (
        stack_names(pipeline.clients.cloudformation, "no-such-stack").tables["high_value_trips"] == "high_value_trips"
    )


def test_query_returns_what_the_file_says(pipeline: Pipeline) -> None:
    high = [t for t in pipeline.expected.trips if t.total is not None and t.total > 80]
    rows = list(
        execute(
            pipeline.clients.dynamodb,
            "SELECT trip_id, total_amount, pickup_datetime FROM high_value_trips WHERE total_amount > 80",
        )
    )
    assert sorted((r["total_amount"], r["pickup_datetime"]) for r in rows) == sorted((t.total, t.pickup) for t in high)
    long_trips = list(
        execute(
            pipeline.clients.dynamodb,
            "SELECT * FROM trip_duration_analysis WHERE duration_category = 'long'",
            max_rows=5,
        )
    )
    assert len(long_trips) == 5 and all(r["duration_minutes"] >= Decimal(30) for r in long_trips)


def test_replay_sends_paced_trips_and_stops_cleanly(pipeline: Pipeline) -> None:
    """A replay of trips already in the tables: idempotent, so the tables keep their counts; stopped early."""
    before = {name: len(items) for name, items in vars(read_tables(pipeline.clients.dynamodb)).items()}
    stop = threading.Event()
    clock_seen: list[object] = []

    def on_clock(clock: object) -> None:
        clock_seen.append(clock)
        if len(clock_seen) == 3:
            stop.set()  # as Ctrl-C does, after three sends

    summary = replay_file(
        pipeline.clients,
        pipeline.handler_clients,
        pipeline.stack,
        pipeline.file,
        FeedOptions(speed=600, max_wait=0.2),
        stop=stop,
        on_clock=on_clock,
        state_dir=pipeline.state_dir,  # the consumer goes on from where the run's left off
    )
    assert summary.interrupted and summary.ok
    assert 3 <= summary.records_sent < summary.trips_to_send == ROWS
    assert summary.records_consumed == summary.records_sent  # what was sent was consumed before returning
    assert summary.sent_through is not None and summary.first_pickup is not None
    assert summary.sent_through >= summary.first_pickup
    after = {name: len(items) for name, items in vars(read_tables(pipeline.clients.dynamodb)).items()}
    assert after == before
