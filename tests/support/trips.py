"""Trip files for the delivery, fault, parity and restart tests: generated (tripstream.trips.generate), so that
they run in every clone; only the tests about real TLC files need ../shared.

Like the real samples, they hold some trips the analytics leave out (a dropoff before the pickup, over 24 hours,
no distance) and, if asked, a blank line.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tripstream.trips.generate import HEADER, generate_rows
from tripstream.trips.normalise import TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file


def trips_file(path: Path, rows: int, *, seed: int = 7, blank_line: bool = False) -> Path:
    """Write `rows` generated trips as CSV at `path` (a blank line in the middle with `blank_line`)."""
    generated = generate_rows(rows, seed=seed)
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
