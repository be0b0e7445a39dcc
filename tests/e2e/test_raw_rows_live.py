"""The stream's second format against a real `tripstream up`: the seed lab's producer (tests/support/lab_producer.py:
csv.DictReader, the lab's conversions, one PutRecord per row, partition key `str(hash(pickup))`) writes generated
files into `taxi_trips`, two files interleaved and a row twice. The tables and zone_hourly_stats must equal the
independent reference (tests/expected.py); the same file uploaded to the bucket, and a second run of the lab's
producer, add nothing; the lab's malformed rows are rejects, with their reasons, under rejects/consumer/.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from expected import expected_for
from support.lab_producer import LabRow, is_lossy, lab_rows, write_as_sent
from support.live_up import TABLES, Up, assert_reference_holds, running_up, wait_for
from support.trips import trips_file

pytestmark = [pytest.mark.e2e]

STREAM = "taxi_trips"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    yield from running_up(tmp_path_factory.mktemp("raw-rows-up"))


def put(up: Up, rows: list[LabRow], **extra: Any) -> None:
    """One PutRecord per row, as the lab's producer does."""
    kinesis = up.client("kinesis")
    for row in rows:
        kinesis.put_record(StreamName=STREAM, Data=row.data, PartitionKey=row.partition_key, **extra)


def put_and_drain(up: Up, rows: list[LabRow], marker_file: Path) -> None:
    """`rows`, then every row of `marker_file` (trips of their own) on every shard, then wait until the markers'
    trips are in their tables: the mapping reads a shard in order, so everything put before is consumed by then."""
    put(up, rows)
    kinesis = up.client("kinesis")
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        start = shard["HashKeyRange"]["StartingHashKey"]
        put(up, list(lab_rows(marker_file)), ExplicitHashKey=start)
    tables = expected_for(marker_file).tables
    assert tables["distance_to_fare_ratio"] or tables["trip_duration_analysis"]
    wait_for(lambda: all(set(tables[name]) <= set(up.items(name)) for name in TABLES), "the markers", 120)


def test_the_labs_producer_is_stored_and_counted_once(up: Up, tmp_path: Path) -> None:
    first = trips_file(tmp_path / "taxi_trips.csv", 150, seed=31)
    second = trips_file(tmp_path / "other.csv", 90, seed=32)
    # Markers: trips of their own, sent after each round; part of the reference.
    markers = trips_file(tmp_path / "markers.csv", 8, seed=33)
    first_rows, second_rows = list(lab_rows(first)), list(lab_rows(second))
    # The trips the lab's records carry: its conversions change a few rows (an empty passenger_count sent as 0).
    sent_first = write_as_sent(first_rows, tmp_path / "first-as-sent.csv")
    sent_second = write_as_sent(second_rows, tmp_path / "second-as-sent.csv")
    changed = [row for row in first_rows if any(is_lossy(column, text) for column, text in row.row.items())]
    assert 0 < len(changed) < 10
    # Two files interleaved, and a row sent twice (far apart, so in other batches).
    interleaved = [r for pair in itertools.zip_longest(first_rows, second_rows) for r in pair if r is not None]
    interleaved.append(first_rows[3])
    put_and_drain(up, interleaved, markers)
    assert_reference_holds(up, sent_first, sent_second, markers)

    # The same file through tripstream's own producer: the same trip_ids, so nothing added but the trips of the
    # rows the lab changed (the file's own values: other trips).
    up.client("s3").upload_file(str(first), up.bucket, "taxi_trips.csv")
    result = wait_for(lambda: up.result("taxi_trips.csv"), "the upload's result", 120)
    assert result["drained"] and not result["gave_up"]
    assert "taxi_trips.csv: 150 rows read, 150 sent, 0 rejected" in up.output()
    assert_reference_holds(up, sent_first, first, sent_second, markers)
    added = set(expected_for(first).trips) - set(expected_for(sent_first).trips)
    assert len(added) == len(changed)

    # The lab's producer run again: nothing added.
    put_and_drain(up, first_rows + second_rows, markers)
    assert_reference_holds(up, sent_first, first, sent_second, markers)


def test_the_labs_malformed_rows_are_rejects_with_reasons(up: Up, tmp_path: Path) -> None:
    source = trips_file(tmp_path / "source.csv", 3, seed=34)
    with source.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    rows[0][1] = "yesterday"  # tpep_pickup_datetime, sent as text
    rows[1][2] = ""  # tpep_dropoff_datetime
    rows[2][11] = "n/a"  # extra, sent as text
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    put(up, list(lab_rows(bad)))

    def reasons() -> dict[str, str] | None:
        s3 = up.client("s3")
        found: dict[str, str] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=up.bucket, Prefix="rejects/consumer/"):
            for entry in page.get("Contents", []):
                body = s3.get_object(Bucket=up.bucket, Key=entry["Key"])["Body"].read()
                for line in body.splitlines():
                    reject = orjson.loads(line)
                    for row in rows:
                        if f'"{row[1]}"' in reject["text"] and f'"{row[2]}"' in reject["text"]:
                            found[row[1] + row[2]] = reject["reason"]
        return found if len(found) == len(rows) else None

    found = wait_for(reasons, "the rejects", 120)
    assert sorted(found.values()) == ["invalid_number", "invalid_timestamp", "missing_timestamp"]
