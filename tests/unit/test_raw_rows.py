"""Raw-row records (ARCHITECTURE.md, "Raw-row records"): a TLC row sent as one JSON object, as the seed lab's
producer sends it (tests/support/lab_producer.py), becomes the canonical trip, with the trip_id, that the same row
gives when read from the file; a bad row gets the file's reject reason.

The lab's conversions change a trip where they are lossy (an empty cell sent as 0, `int(float("1.5"))` sent as 1):
such a row is compared with the same row, those cells rewritten as the lab wrote them, read from a file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import tlc_sample_names
from support.lab_producer import is_lossy, lab_rows, write_as_sent
from tripstream.trips.normalise import RowError, TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.records import decode_record, encode_trip
from tripstream.trips.rows import trip_rows

SHARD, SEQUENCE = "shardId-000000000000", "49650000000000000001"

Outcome = tuple[str, Any]  # ("trip", the trip without its source) or ("reject", (reason, column))


def file_outcomes(path: Path) -> dict[int, Outcome]:
    """What the file reader makes of each row of `path`, by line number."""
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket="b", source_key=path.name)
    outcomes: dict[int, Outcome] = {}
    for outcome in trip_rows(trip_file, normaliser, {"bucket": "b", "key": path.name}):
        if outcome.trip is not None:
            outcomes[outcome.row.row_number] = ("trip", without_source(outcome.trip))
        else:
            assert outcome.reject is not None
            outcomes[outcome.row.row_number] = ("reject", (outcome.reject.reason, outcome.reject.error.column))
    return outcomes


def record_outcome(data: str | bytes) -> Outcome:
    """What the consumer's decoding makes of one record."""
    try:
        trip = decode_record(data.encode() if isinstance(data, str) else data, SHARD, SEQUENCE)
    except RowError as error:
        return ("reject", (error.reason, error.column))
    return ("trip", without_source(trip))


def without_source(trip: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in trip.items() if name != "source"}


def compare(path: Path, tmp_path: Path) -> tuple[int, int, int]:
    """Every row of `path` sent the lab's way gives the file reader's outcome. Returns (rows compared with the
    file as it is, rows compared with the file as the lab wrote them, rejects among them)."""
    reference = file_outcomes(path)
    rows = list(lab_rows(path))
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert [row.line for row in rows] == sorted(reference), "the file reader and csv.DictReader see other rows"
    lossless = [row for row in rows if not any(is_lossy(c, row.row[c]) for c in header)]
    lossy = [row for row in rows if any(is_lossy(c, row.row[c]) for c in header)]
    mismatched = [(row.line, row.data) for row in lossless if record_outcome(row.data) != reference[row.line]]
    assert not mismatched, (path.name, len(mismatched), mismatched[:2])
    rewritten = file_outcomes(write_as_sent(lossy, tmp_path / path.name)) if lossy else {}
    assert len(rewritten) == len(lossy)
    mismatched = [
        (row.line, row.data)
        for row, expected in zip(lossy, rewritten.values(), strict=True)
        if record_outcome(row.data) != expected
    ]
    assert not mismatched, (path.name, len(mismatched), mismatched[:2])
    rejects = sum(1 for outcome in reference.values() if outcome[0] == "reject")
    return len(lossless), len(lossy), rejects


@pytest.mark.parametrize("sample", tlc_sample_names())
def test_every_real_row_sent_the_labs_way_is_the_file_readers_trip(
    sample: str, tlc_samples: Path, tmp_path: Path
) -> None:
    """Same canonical values, same trip_id, same service, same reject reasons: every row of every real sample."""
    lossless, lossy, _ = compare(tlc_samples / sample, tmp_path)
    assert lossless + lossy > 900
    assert lossless > 0


def test_bad_real_rows_get_the_file_readers_reasons(tlc_samples: Path, tmp_path: Path) -> None:
    """Real rows made bad the ways files are bad; sent the lab's way, each is the reject a file reader makes of it
    (the lab sends timestamps and most amounts as text, `float("1e999")` as Infinity, `float("nan")` as NaN)."""
    source = tlc_samples / "yellow_2019-01_sample.csv"
    lines = source.read_text().splitlines()
    header, rows = lines[0], lines[1:40]
    breakages = [
        lambda cells: cells.__setitem__(1, "2019-13-45 25:00:00"),  # unreadable timestamp
        lambda cells: cells.__setitem__(2, ""),  # missing dropoff
        lambda cells: cells.__setitem__(11, "abc"),  # text in `extra` (sent as text)
        lambda cells: cells.__setitem__(10, "1e999"),  # fare_amount: Infinity on the stream
        lambda cells: cells.__setitem__(16, "nan"),  # total_amount: NaN on the stream
        lambda cells: cells.__setitem__(12, "9" * 20),  # mta_tax out of range (sent as text)
        lambda cells: cells.__setitem__(13, "1" * 30),  # tip_amount out of range (sent as a float)
        lambda cells: cells.__setitem__(14, "0" * 70),  # field too long (tolls_amount, sent as text)
        lambda cells: cells.__setitem__(6, "x" * 70),  # field too long (store_and_fwd_flag, sent as text)
        lambda cells: cells.append("surplus"),  # more fields than the header, not empty
        lambda cells: cells.extend(["", ""]),  # more fields than the header, empty: fine
        # trip_distance: Python's float() reads it, a file reader does not: the lab sends 1000.0, a trip.
        lambda cells: cells.__setitem__(4, "1_000"),
    ]
    broken = []
    for row, breakage in zip(rows, breakages, strict=False):
        cells = row.split(",")
        breakage(cells)
        broken.append(",".join(cells))
    path = tmp_path / "broken.csv"
    path.write_text("\n".join([header, *broken, *rows[len(breakages) :]]) + "\n")
    (tmp_path / "lab").mkdir()
    _, _, rejects = compare(path, tmp_path / "lab")
    assert rejects == len(breakages) - 1  # in the file: all but the empty surplus fields


def test_json_numbers_read_as_the_text_they_came_from() -> None:
    row = {
        "VendorID": "1",
        "tpep_pickup_datetime": "2019-01-01 00:46:40",
        "tpep_dropoff_datetime": "2019-01-01 00:53:20",
        "passenger_count": "1",
        "trip_distance": "0.56999999999999995",
        "fare_amount": "7.0",
        "PULocationID": "151",
        "total_amount": "9.95",
    }
    as_text = record_outcome(json.dumps(row))
    as_numbers = {
        **row,
        "VendorID": 1,
        "passenger_count": 1.0,
        "trip_distance": float("0.56999999999999995"),
        "fare_amount": 7,
        "PULocationID": 151,
        "total_amount": 9.95,
    }
    assert record_outcome(json.dumps(as_numbers)) == as_text
    # Its source is the stream.
    source = decode_record(json.dumps(row).encode(), SHARD, SEQUENCE)["source"]
    assert source == {"shard_id": SHARD, "sequence_number": SEQUENCE}
    assert as_text[0] == "trip"
    trip = as_text[1]
    assert (trip["vendor_id"], trip["passenger_count"], trip["trip_distance"]) == (1, 1, 0.57)
    # Keys are matched as a header is (case, surrounding spaces, order); null is an empty cell.
    respelled = {f" {name.upper()} ": value for name, value in reversed(row.items())}
    assert record_outcome(json.dumps({**respelled, "extra": None})) == as_text


def test_the_service_is_inferred_from_the_keys_as_from_a_header() -> None:
    common = {"passenger_count": 1, "total_amount": 12.5}
    green = {"lpep_pickup_datetime": "2019-01-01 00:10:00", "lpep_dropoff_datetime": "2019-01-01 00:20:00"}
    yellow = {"tpep_pickup_datetime": "2019-01-01 00:10:00", "tpep_dropoff_datetime": "2019-01-01 00:20:00"}
    plain = {"pickup_datetime": "2019-01-01 00:10:00", "dropoff_datetime": "2019-01-01 00:20:00"}
    services = {
        name: record_outcome(json.dumps({**times, **common}))[1]["service"]
        for name, times in (("green", green), ("yellow", yellow), ("plain", plain))
    }
    assert services == {"green": "green", "yellow": "yellow", "plain": "yellow"}
    assert record_outcome(json.dumps({**plain, **common, "trip_type": 1}))[1]["service"] == "green"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"total_amount": 5}, "invalid_record"),  # no pickup or dropoff column: not a TLC row
        ({}, "invalid_record"),
        ({"pickup_datetime": "2019-01-01 00:10:00", "dropoff_datetime": ["2019-01-01 00:20:00"]}, "invalid_record"),
        ({"pickup_datetime": "2019-01-01 00:10:00", "dropoff_datetime": {"at": 1}}, "invalid_record"),
        ({"pickup_datetime": "2019-01-01 00:10:00", "dropoff_datetime": 20190101}, "invalid_timestamp"),
        ({"pickup_datetime": "2019-01-01 00:10:00", "dropoff_datetime": None}, "missing_timestamp"),
        (
            {"pickup_datetime": "2019-01-01 00:10:00", "dropoff_datetime": "2019-01-01 00:20:00", "fare_amount": True},
            "invalid_number",
        ),
    ],
)
def test_what_is_no_trip_is_a_reject_with_its_reason(record: dict[str, Any], reason: str) -> None:
    outcome = record_outcome(json.dumps(record))
    assert outcome[0] == "reject" and outcome[1][0] == reason


def test_undecodable_stays_undecodable_and_canonical_records_keep_their_check() -> None:
    assert record_outcome(b"not json")[1][0] == "undecodable_record"
    assert record_outcome(b"[1, 2]")[1][0] == "undecodable_record"
    assert record_outcome(b'{"pickup_datetime": "\\ud800", "x": NaN}')[1][0] == "undecodable_record"
    # With schema_version it is a canonical record, checked as before (never read as a raw row).
    row = {"pickup_datetime": "2019-01-01 00:10:00", "dropoff_datetime": "2019-01-01 00:20:00"}
    assert record_outcome(json.dumps({**row, "schema_version": 1}))[1][0] == "invalid_record"
    assert record_outcome(b'{"schema_version": 1, "trip_id": "t", "fare_amount": NaN}')[1][0] == "undecodable_record"
    trip = record_outcome(json.dumps(row))[1]
    canonical = record_outcome(encode_trip({**trip, "source": {"bucket": "b", "key": "k", "row": 2}}))
    assert canonical == ("trip", trip)


def test_the_same_row_twice_is_the_same_trip() -> None:
    row = {"pickup_datetime": "2019-01-01T00:10:00", "dropoff_datetime": "2019-01-01T00:20:00", "fare_amount": 9.5}
    first, second = (record_outcome(json.dumps(row)) for _ in range(2))
    assert first == second and first[0] == "trip"
