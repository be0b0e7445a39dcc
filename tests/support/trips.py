"""Trip files for the delivery, fault, parity and restart tests: generated (tripstream.trips.generate), so that
they run in every clone; only the tests about real TLC files need ../shared.

Like the real samples, they hold some trips the analytics leave out (a dropoff before the pickup, over 24 hours,
no distance) and, if asked, a blank line.
"""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tripstream.trips.generate import HEADER, generate_rows
from tripstream.trips.normalise import TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file

# What real months carry besides their month (`strays=True`): pickups years away, and refunds (negative amounts).
STRAY_PICKUPS = {3: "2088-01-24 00:25:39", 7: "2009-01-01 00:04:12"}  # row index -> pickup (the dropoff follows it)
REFUND_ROWS = (5, 11, 13)
_AMOUNTS = tuple(
    HEADER.index(name) for name in HEADER if name.endswith(("_amount", "extra", "mta_tax", "surcharge", "fee"))
)


def with_strays(rows: list[list[str]]) -> list[list[str]]:
    """`rows` with two pickups dated years from the month (`STRAY_PICKUPS`; their durations kept) and three refunds
    (`REFUND_ROWS`: every amount negated, payment type 4, a dispute), as real TLC months carry."""
    pickup, dropoff = HEADER.index("tpep_pickup_datetime"), HEADER.index("tpep_dropoff_datetime")
    changed = [list(row) for row in rows]
    for index, when in STRAY_PICKUPS.items():
        row = changed[index]
        took = datetime.fromisoformat(row[dropoff]) - datetime.fromisoformat(row[pickup])
        row[pickup] = when
        row[dropoff] = (datetime.fromisoformat(when) + took).strftime("%Y-%m-%d %H:%M:%S")
    for index in REFUND_ROWS:
        row = changed[index]
        for column in _AMOUNTS:
            row[column] = f"{-Decimal(row[column]):.2f}" if Decimal(row[column]) else row[column]
        row[HEADER.index("payment_type")] = "4"
    return changed


def trips_file(path: Path, rows: int, *, seed: int = 7, blank_line: bool = False, strays: bool = False) -> Path:
    """Write `rows` generated trips as CSV at `path` (a blank line in the middle with `blank_line`; with `strays`,
    two pickups years away and three refunds, `with_strays`)."""
    generated = generate_rows(rows, seed=seed)
    if strays:
        generated = with_strays(generated)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for index, row in enumerate(generated, start=1):
            writer.writerow(row)
            if blank_line and index == rows // 2:
                handle.write("\n")
    return path


def canonical_trips(path: Path, count: int | None = None) -> list[dict[str, Any]]:
    """Canonical trips of a trip file (distinct trip_ids, in file order; refused rows left out)."""
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket="b", source_key=path.name)
    trips: dict[str, dict[str, Any]] = {}
    for row in trip_file.rows():
        if row.fields is None or row.error is not None:
            continue
        try:
            trip = normaliser.normalise(row.fields, row.row_number)
        except Exception:  # a refused row
            continue
        trips.setdefault(trip["trip_id"], trip)
        if count is not None and len(trips) == count:
            break
    return list(trips.values())
