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


def put_and_drain(up: Up, rows: list[LabRow], folder: Path, seed: int) -> list[Path]:
    """`rows`, then markers (generated trips of their own, other ones on each shard), then wait until every marker is
    in its tables: the mapping reads a shard in order, so everything put before on that shard is consumed by then.
    Distinct markers per shard and per round: the same trips on two shards would be found once the faster shard
    consumed them, while the other shard still has rows to deliver. Returns the marker files (part of the reference).
    """
    put(up, rows)
    kinesis = up.client("kinesis")
    markers: list[Path] = []
    expected = {name: set[str]() for name in TABLES}  # every marker's trip_ids, per table
    for index, shard in enumerate(kinesis.list_shards(StreamName=STREAM)["Shards"]):
        marker_rows = list(lab_rows(trips_file(folder / f"markers-{seed}-{index}.csv", 8, seed=seed + index)))
        marker_file = write_as_sent(marker_rows, folder / f"markers-{seed}-{index}-as-sent.csv")
        tables = expected_for(marker_file).tables
        assert tables["distance_to_fare_ratio"] or tables["trip_duration_analysis"]
        for name in TABLES:
            expected[name] |= set(tables[name])
        put(up, marker_rows, ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"])
        markers.append(marker_file)
    assert len(markers) > 1  # the race these markers rule out needs two shards

    def all_markers_in() -> bool:
        return all(expected[name] <= set(up.items(name)) for name in TABLES)

    wait_for(all_markers_in, "the markers", 120)
    return markers


def test_the_labs_producer_is_stored_and_counted_once(up: Up, tmp_path: Path) -> None:
    first = trips_file(tmp_path / "taxi_trips.csv", 150, seed=31)
    second = trips_file(tmp_path / "other.csv", 90, seed=32)
    first_rows, second_rows = list(lab_rows(first)), list(lab_rows(second))
    # The trips the lab's records carry: its conversions change a few rows (an empty passenger_count sent as 0).
    sent_first = write_as_sent(first_rows, tmp_path / "first-as-sent.csv")
    sent_second = write_as_sent(second_rows, tmp_path / "second-as-sent.csv")
    changed = [row for row in first_rows if any(is_lossy(column, text) for column, text in row.row.items())]
    assert 0 < len(changed) < 10
    # Two files interleaved, and a row sent twice (far apart, so in other batches).
    interleaved = [r for pair in itertools.zip_longest(first_rows, second_rows) for r in pair if r is not None]
    interleaved.append(first_rows[3])
    markers = put_and_drain(up, interleaved, tmp_path, seed=40)
    assert_reference_holds(up, sent_first, sent_second, *markers)

    # The same file through tripstream's own producer: the same trip_ids, so nothing added but the trips of the
    # rows the lab changed (the file's own values: other trips).
    up.client("s3").upload_file(str(first), up.bucket, "taxi_trips.csv")
    result = wait_for(lambda: up.result("taxi_trips.csv"), "the upload's result", 120)
    assert result["drained"] and not result["gave_up"]
    assert "taxi_trips.csv: 150 rows read, 150 sent, 0 rejected" in up.output()
    assert_reference_holds(up, sent_first, first, sent_second, *markers)
    added = set(expected_for(first).trips) - set(expected_for(sent_first).trips)
    assert len(added) == len(changed)

    # The lab's producer run again: nothing added (but the new round's markers).
    markers += put_and_drain(up, first_rows + second_rows, tmp_path, seed=50)
    assert_reference_holds(up, sent_first, first, sent_second, *markers)


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
