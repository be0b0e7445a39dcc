"""The seed lab's own producer, as a foreign client of the stream: it imports nothing of tripstream.

The lab's Lambda reads the uploaded CSV with `csv.DictReader`, converts `vendor_id`, `rate_code`,
`passenger_count`, `pickup_location_id`, `dropoff_location_id` with `int(float(x))` (empty -> 0) and
`trip_distance`, `fare_amount`, `tip_amount`, `total_amount` with `float(x)` (empty -> 0.0), leaves every other
column as its text, and sends each row with `put_record(StreamName="taxi_trips", Data=json.dumps(row),
PartitionKey=str(hash(row["pickup_datetime"])))`.

Two generalisations, so that every TLC era can be sent the lab's way:
- the lab's producer was written for one file, with the BigQuery names; the same conversions are applied to the
  same columns under the TLC's own spellings (`VendorID`, `RatecodeID`, `PULocationID`, ...), and the partition key
  is the hash of whichever column holds the pickup time;
- where `int(float(x))` or `float(x)` raises (`VTS`, `abc`), the lab's producer stops with a traceback; here the
  cell is sent as its text, so that what the consumer makes of it can be compared with what a file reader does.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAB_INTEGERS = frozenset({"vendor_id", "rate_code", "passenger_count", "pickup_location_id", "dropoff_location_id"})
LAB_FLOATS = frozenset({"trip_distance", "fare_amount", "tip_amount", "total_amount"})
# The TLC's own spellings of the lab's columns (lower-cased).
TLC_SPELLINGS = {
    "vendorid": "vendor_id",
    "ratecodeid": "rate_code",
    "pulocationid": "pickup_location_id",
    "dolocationid": "dropoff_location_id",
}


def lab_name(column: str) -> str:
    name = column.strip().lower()
    return TLC_SPELLINGS.get(name, name)


def lab_int(text: str) -> int | str:
    if not text:
        return 0
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return text


def lab_float(text: str) -> float | str:
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return text


def is_lossy(column: str, text: str) -> bool:
    """Whether the lab's conversion of this cell changes the trip: an empty cell becomes 0, and `int(float(x))`
    truncates a value that is not whole (a file reader refuses `1.5` as a count), and Python's `float()` reads
    `1_000` and non-ASCII digits, which no CSV writer produces and a file reader refuses. Otherwise `float(x)` of a
    number is the value a file reader reads from its text, and a cell the lab cannot convert is sent as it is."""
    name = lab_name(column)
    if name not in LAB_INTEGERS and name not in LAB_FLOATS:
        return False
    if not text:
        return True
    if "_" in text or not text.isascii():
        return True
    if name in LAB_FLOATS:
        return False
    try:
        return not float(text).is_integer()
    except (ValueError, OverflowError):
        return False


def lab_record(row: dict[Any, Any]) -> dict[Any, Any]:
    """A csv.DictReader row with the lab's conversions (its extra fields, under the key None, kept as they are)."""
    record = dict(row)
    for column, text in row.items():
        if column is None or text is None:
            continue
        name = lab_name(column)
        if name in LAB_INTEGERS:
            record[column] = lab_int(text)
        elif name in LAB_FLOATS:
            record[column] = lab_float(text)
    return record


@dataclass(frozen=True)
class LabRow:
    line: int  # csv.DictReader's line_num after the row: its last physical line
    row: dict[Any, Any]  # as read
    record: dict[Any, Any]  # as the lab sends it

    @property
    def data(self) -> str:
        return json.dumps(self.record)

    @property
    def partition_key(self) -> str:
        pickup = next(c for c in self.record if c is not None and c.strip().lower().endswith("pickup_datetime"))
        return str(hash(self.record[pickup]))


def lab_rows(path: Path) -> Iterator[LabRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield LabRow(reader.line_num, row, lab_record(row))


def write_as_sent(rows: list[LabRow], to: Path) -> Path:
    """`rows` as a CSV file whose cells the lab's conversion changes (`is_lossy`) hold what the lab sent: the trips
    a file reader makes of it are the trips the lab's records carry. Every other cell keeps its text."""
    header = [column for column in rows[0].row if column is not None]
    with to.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for lab_row in rows:
            cells = [
                str(lab_row.record[column]) if is_lossy(column, lab_row.row[column]) else lab_row.row[column]
                for column in header
            ]
            writer.writerow(cells + list(lab_row.row.get(None) or []))
    return to


def put_file(kinesis: Any, path: Path, stream: str = "taxi_trips") -> int:
    """Send every row of `path` as the lab does: one PutRecord each. Returns the records sent."""
    sent = 0
    for lab_row in lab_rows(path):
        kinesis.put_record(StreamName=stream, Data=lab_row.data, PartitionKey=lab_row.partition_key)
        sent += 1
    return sent
