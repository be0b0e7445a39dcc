"""`tripstream run` on every real TLC sample in ../shared/data/tlc (its first 6,000 rows; and on a Parquet and a
.csv.gz made from one of them): exit 0, nothing rejected, and the three tables hold exactly the items
tests/expected.py computes from the file, item by item.

The runs share the session emulator, reset once for this module: the first run deploys the stack, the others find
it up to date (a deploy costs more than most runs). Before each run the three tables are made anew, empty, and the
runs share one state folder, so each run's consumer starts after the records of the runs before it.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import support.cli as support_cli
from conftest import tlc_sample_names
from expected import Expected, expected_for
from tripstream.aws.dynamodb import from_item

pytestmark = [pytest.mark.e2e, pytest.mark.real_samples, pytest.mark.slow]

# What is compared, per table, besides the keys.
COMPARED = {
    "high_value_trips": ("total_amount",),
    "trip_duration_analysis": ("duration_minutes", "duration_category"),
    "distance_to_fare_ratio": ("fare_per_mile", "profitability_tier"),
}
# The sample the derived formats are made from: the 2010-2014 schema, text codes, long float text, a blank line.
DERIVED_FROM = "yellow_2013-01_sample_blankline.csv"


@dataclass(frozen=True)
class Pipeline:
    endpoint: str
    state_dir: Path


@pytest.fixture(scope="module")
def pipeline(emulator_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    support_cli.reset_emulator(emulator_endpoint)
    return Pipeline(emulator_endpoint, tmp_path_factory.mktemp("state"))


def empty_tables(endpoint: str) -> None:
    """The three tables made anew, empty (far quicker than deleting 25,000 items, or deploying again)."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    existing = set(dynamodb.list_tables()["TableNames"])
    for table in COMPARED:
        if table not in existing:
            continue
        description = dynamodb.describe_table(TableName=table)["Table"]
        dynamodb.delete_table(TableName=table)
        dynamodb.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2})
        dynamodb.create_table(
            TableName=table,
            KeySchema=description["KeySchema"],
            AttributeDefinitions=description["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2})


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return support_cli.run_cli("run", *args, "--json", timeout=timeout, isolated=True)


def run_and_compare(path: Path, expected: Expected, pipeline: Pipeline) -> dict[str, Any]:
    endpoint = pipeline.endpoint
    empty_tables(endpoint)
    result = run_cli(str(path), "--endpoint-url", endpoint, "--state-dir", str(pipeline.state_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary: dict[str, Any] = json.loads(result.stdout)
    print(  # the close note's figures: pytest -s shows them
        f"{path.name}: format {summary['format']}, rows read {summary['rows_read']:,}, "
        f"sent {summary['records_sent']:,}, rejected {sum(summary['rows_rejected'].values()):,} "
        f"{summary['rows_rejected'] or ''}, blank lines {summary['blank_lines']}, {summary['seconds']:.1f} s"
    )
    assert summary["refused"] is None
    assert summary["rows_read"] == expected.rows
    assert summary["blank_lines"] == expected.blank_lines
    assert summary["rows_rejected"] == {}, "a real sample has no row a person would call invalid"
    assert summary["records_sent"] == expected.rows
    assert summary["records_consumed"] == expected.rows
    assert summary["records_rejected"] == {}
    assert summary["records_to_on_failure"] == 0

    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    for table, want in expected.tables.items():
        got = {item["trip_id"]: item for item in scan_compared(dynamodb, table)}
        assert summary["table_items"][table] == len(want), table
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert not missing and not extra, (
            table,
            f"{len(missing)} missing",
            missing[:3],
            f"{len(extra)} extra",
            extra[:3],
        )
        wrong = [
            (trip_id, {name: got[trip_id].get(name) for name in COMPARED[table]}, values)
            for trip_id, values in want.items()
            if any(not _same(got[trip_id].get(name), values[name]) for name in COMPARED[table])
        ]
        assert not wrong, (table, f"{len(wrong)} items differ", wrong[:3])
    return summary


def scan_compared(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    """Every item of the table, with only the attributes compared: moto's response serialiser costs about as much
    per attribute as the whole write did, so the other attributes are left on the server."""
    names = {f"#a{index}": name for index, name in enumerate(("trip_id", *COMPARED[table]))}
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
    )
    for page in pages:
        for item in page.get("Items", []):
            yield from_item(item)


def _same(stored: Any, expected: Any) -> bool:
    if isinstance(expected, Decimal):
        return isinstance(stored, Decimal) and stored == expected
    return bool(stored == expected)


# Every row of every sample is checked item by item in the domain (tests/unit/test_analytics.py); through the whole
# pipeline, a sample's first rows are enough to prove the transport, and keep the suite's time in bounds.
PIPELINE_ROWS = 6_000


def head(path: Path, folder: Path, rows: int = PIPELINE_ROWS) -> Path:
    """`path` itself, or its header and first `rows` lines (blank ones included) under the same name."""
    with path.open("rb") as source:
        lines = [line for _, line in zip(range(rows + 1), source, strict=False)]
        if source.read(1) == b"":
            return path
    target = folder / path.name
    target.write_bytes(b"".join(lines))
    return target


@pytest.mark.timeout(1200)  # the 25,000-row samples take minutes on a loaded 2-core machine (moto is the cost)
@pytest.mark.parametrize("sample", tlc_sample_names())
def test_run_on_a_real_sample(sample: str, tlc_samples: Path, pipeline: Pipeline, tmp_path: Path) -> None:
    path = head(tlc_samples / sample, tmp_path)
    run_and_compare(path, expected_for(path), pipeline)


@pytest.mark.parametrize("fmt", ["parquet", "csv.gz"])
def test_run_on_a_parquet_and_a_gzip_made_from_a_real_sample(
    fmt: str, tlc_samples: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """The same trips, so the same trip ids and the same items, from the other formats."""
    source = tlc_samples / DERIVED_FROM
    expected = expected_for(source)
    target = tmp_path / source.name.replace(".csv", "." + fmt)
    if fmt == "csv.gz":
        target.write_bytes(gzip.compress(source.read_bytes()))
    else:
        # pyarrow's CSV reader infers the types (timestamps, doubles, int64, text codes), as a user's tool would.
        pq.write_table(pacsv.read_csv(source), target, row_group_size=250)
        assert pq.ParquetFile(target).num_row_groups == 4
        expected.blank_lines = 0  # Parquet has no lines
    summary = run_and_compare(target, expected, pipeline)
    assert summary["format"] == fmt
