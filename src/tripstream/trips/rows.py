"""The one row loop: a trip file -> canonical trips or rejects, for the producer and `replay` alike.

A `Reject` is also what the consumer keeps of a Kinesis record it cannot use: one shape for every rejects file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tripstream.trips.normalise import RowError, TripNormaliser
from tripstream.trips.readers import RawRow, ResumePoint, TripFile


@dataclass(frozen=True)
class Reject:
    """A row or record that did not become a trip: where it came from, why, and its text (for a person to fix)."""

    source: dict[str, Any]
    error: RowError
    text: str
    line: int | None = None

    @property
    def reason(self) -> str:
        return self.error.reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "reason": self.error.reason,
            "column": self.error.column,
            "detail": self.error.detail,
            "text": self.text,
        }


@dataclass(frozen=True)
class RowOutcome:
    """One row read: exactly one of `trip` and `reject` is set."""

    row: RawRow
    trip: dict[str, Any] | None
    reject: Reject | None


def trip_rows(
    trip_file: TripFile, normaliser: TripNormaliser, source: dict[str, Any], resume: ResumePoint | None = None
) -> Iterator[RowOutcome]:
    """Every row of `trip_file` (from `resume` on) as a trip or a reject; `source` names the file in rejects."""
    for row in trip_file.rows(resume):
        error = row.error
        if error is None:
            assert row.fields is not None
            try:
                yield RowOutcome(row, normaliser.normalise(row.fields, row.row_number), None)
                continue
            except RowError as row_error:
                error = row_error
        reject = Reject({**source, "row": row.row_number}, error, row.text, line=row.row_number)
        yield RowOutcome(row, None, reject)
