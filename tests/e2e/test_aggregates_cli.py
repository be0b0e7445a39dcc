"""`tripstream run` fills zone_hourly_stats exactly (as tests/expected.py recomputes it from the CSV), a second
upload of the same file adds nothing, and `tripstream aggregates rebuild` recomputes the same table, twice.
A month with a 2088 pickup, a 2009 pickup and refunds: `report --json` and `watch --once` keep their window where
the month is and show the strays and refunds as such (tests/report_oracle.py recomputes them)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from expected import expected_aggregates, expected_for
from report_oracle import check_aggregates, read_trips
from report_oracle import expected_aggregates as expected_views
from support.cli import run_cli
from support.trips import trips_file
from tripstream.aws.dynamodb import from_item

pytestmark = [pytest.mark.e2e]

KEYS = ("pickup_location_id", "pickup_hour")


def cells(endpoint: str) -> dict[tuple[str, str], dict[str, object]]:
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    items = [
        from_item(i)
        for page in dynamodb.get_paginator("scan").paginate(TableName="zone_hourly_stats")
        for i in page["Items"]
    ]
    return {(str(i[KEYS[0]]), str(i[KEYS[1]])): {k: v for k, v in i.items() if k not in KEYS} for i in items}


def test_run_twice_then_rebuild_twice(fresh_endpoint: str, tmp_path: Path) -> None:
    sample = tmp_path / "trips.csv"
    assert run_cli("generate", str(sample), "--rows", "300", "--seed", "5").returncode == 0
    state = tmp_path / "state"
    for key in ("first.csv", "again/first-copy.csv"):
        result = run_cli("run", str(sample), "--endpoint-url", fresh_endpoint, "--state-dir", str(state), "--key", key)
        assert result.returncode == 0, result.stderr
    want = expected_aggregates(sample)
    live = cells(fresh_endpoint)
    assert live == want
    reference = expected_for(sample)
    in_some_table = set().union(*(set(table) for table in reference.tables.values()))
    rebuilt: list[dict[tuple[str, str], dict[str, object]]] = []
    for _ in range(2):
        result = run_cli("aggregates", "rebuild", "--endpoint-url", fresh_endpoint)
        assert result.returncode == 0, result.stderr
        assert f"from {len(in_some_table):,} trips" in result.stderr + result.stdout
        rebuilt.append(cells(fresh_endpoint))
    assert rebuilt[0] == rebuilt[1]
    # Equal to the live cells, but for trips in none of the three tables (which a rebuild cannot see).
    assert sum(int(str(c["trips"])) for c in rebuilt[0].values()) == len(in_some_table)
    if in_some_table == set(reference.trips):
        assert rebuilt[0] == live


def test_report_and_watch_keep_their_window_where_the_month_is(fresh_endpoint: str, tmp_path: Path) -> None:
    sample = trips_file(tmp_path / "trips.csv", 400, seed=11, strays=True)  # 2088, 2009, three refunds
    result = run_cli("run", str(sample), "--endpoint-url", fresh_endpoint, "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    assert cells(fresh_endpoint) == expected_aggregates(sample)  # refunds counted apart as well, exactly
    report = run_cli("report", "--json", "--aggregates-only", "--zones", "none", "--endpoint-url", fresh_endpoint)
    assert report.returncode == 0, report.stderr
    view = json.loads(report.stdout, parse_float=Decimal)["aggregates"]
    numbers = expected_views(read_trips(sample))
    check_aggregates(view, numbers)
    assert view["first_hour"].startswith("2024-01") and view["last_hour"].startswith("2024-01")
    assert [h["hour"] for h in view["strays"]["hours"]] == ["2009-01-01T00", "2088-01-24T00"]
    assert view["refunds"]["trips"] == 3 and Decimal(view["refunds"]["total_amount"]) < 0
    watched = run_cli("watch", "--once", "--zones", "none", "--endpoint-url", fresh_endpoint, env={"COLUMNS": "200"})
    assert watched.returncode == 0, watched.stderr
    screen = watched.stdout
    assert f"window {view['first_hour']} .. {view['last_hour']}" in screen
    assert "stray-dated 2 trips" in screen and "2088-01-24T00 (1)" in screen and "refunds 3 trips" in screen
    assert "2088-01-24 00:00" not in screen and numbers["by_pickup_hour"][-1][0].replace("T", " ") + ":00" in screen
