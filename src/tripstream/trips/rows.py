"""The one row loop: a trip file -> canonical trips or rejects, for the producer and `replay` alike.

A `Reject` is also what the consumer keeps of a Kinesis record it cannot use: one shape for every rejects file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tripstream.trips.normalise import RejectReason, RowError, TripNormaliser, derive_trip_id
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


# Ids remembered per file to find conflicts (~150 bytes each): past this, later ids are no longer checked.
MAX_TRACKED_TRIP_IDS = 1_000_000


class TripIdConflicts:
    """The trip_id values of a file's `trip_id` column, with a hash of their content and their line: the same id
    with other content is a conflict (tables would disagree about the trip), the same content a duplicate."""

    def __init__(self, limit: int = MAX_TRACKED_TRIP_IDS) -> None:
        self._seen: dict[str, int] = {}  # trip_id -> content hash << 40 | line
        self._limit = limit

    def check(self, trip: dict[str, Any], line: int) -> None:
        content = int(derive_trip_id(trip)[:16], 16)
        first = self._seen.get(trip["trip_id"])
        if first is None:
            if len(self._seen) < self._limit:
                self._seen[trip["trip_id"]] = content << 40 | line
        elif first >> 40 != content:
            detail = f"line {first & (1 << 40) - 1} has the same trip_id with other content"
            raise RowError(RejectReason.CONFLICTING_TRIP_ID, detail, "trip_id")


def trip_rows(
    trip_file: TripFile, normaliser: TripNormaliser, source: dict[str, Any], resume: ResumePoint | None = None
) -> Iterator[RowOutcome]:
    """Every row of `trip_file` (from `resume` on) as a trip or a reject; `source` names the file in rejects.

    In a file with a trip_id column, a row whose id an earlier row had with other content is a reject
    (`conflicting_trip_id`); within one invocation, as the ids seen are not carried over to a follow-up."""
    conflicts = TripIdConflicts() if trip_file.header.has_trip_id else None
    for row in trip_file.rows(resume):
        error = row.error
        if error is None:
            assert row.fields is not None
            try:
                trip = normaliser.normalise(row.fields, row.row_number)
                if conflicts is not None:
                    conflicts.check(trip, row.row_number)
                yield RowOutcome(row, trip, None)
                continue
            except RowError as row_error:
                error = row_error
        reject = Reject({**source, "row": row.row_number}, error, row.text, line=row.row_number)
        yield RowOutcome(row, None, reject)
