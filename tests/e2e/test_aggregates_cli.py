"""`tripstream run` fills zone_hourly_stats exactly (as tests/expected.py recomputes it from the CSV), a second
upload of the same file adds nothing, and `tripstream aggregates rebuild` recomputes the same table, twice."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from expected import expected_aggregates, expected_for
from support.cli import run_cli
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
