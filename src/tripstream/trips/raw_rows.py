"""Raw-row records (ARCHITECTURE.md, "Raw-row records"): one TLC row sent as a JSON object by another producer
(the seed lab's: `json.dumps(row)` of a `csv.DictReader` row, a few columns converted to numbers) -> the canonical
trip the same row gives when read from a file.

Nothing here decides a value: the object's keys are a header and its values a row, and both go through the file
path (`normalise.resolve_header`, `normalise.TripNormaliser`), so column matching, values, reject reasons and the
`trip_id` are the file's by construction. A value becomes the text a CSV cell would hold:

- a string is the cell;
- a JSON number is its shortest form (`repr`), which the normaliser reads exactly as the text the number came from
  (it reads a numeric text as the double it denotes: `float("0.56999999999999995")` is sent as 0.57 and read as
  0.57, as that text is; an int 1 is "1");
- null is an empty cell; true / false are `true` / `false` (as a Parquet boolean column is read);
- `csv.DictReader` keeps a row's fields beyond the header as a list under the key None, which `json.dumps` writes
  as "null": that list is the row's extra fields (empty ones are fine, as in a file; others: `wrong_field_count`).

The service is inferred from the keys as from a header (green or yellow marker columns, else yellow): a record has
no file name, which is the file reader's last hint. The source is the stream: `{"shard_id", "sequence_number"}`.
"""

from __future__ import annotations

import functools
from typing import Any

from tripstream.trips.normalise import (
    CanonicalTrip,
    FileRefused,
    RejectReason,
    RowError,
    TripNormaliser,
    resolve_header,
)

# What `json.dumps` writes for csv.DictReader's restkey (None): the row's fields beyond the header.
EXTRA_FIELDS_KEY = "null"
# The name a record's header goes by (in no message a person reads; it names no service, see module doc).
_SOURCE_NAME = "raw-row record"
# Distinct headers kept resolved (each with its normaliser's memo of parsed values); producers use a handful.
_MAX_HEADERS = 256


def normalise_raw_row(row: dict[str, Any], shard_id: str, sequence_number: str) -> CanonicalTrip:
    """A raw-row record (a JSON object without `schema_version`) -> its canonical trip. Raises `RowError`: the
    file's reasons for a row, `invalid_record` for an object that is no TLC row (no pickup or dropoff column, a
    value that is neither text nor a number)."""
    columns = tuple(row)
    values = list(row.values())
    if columns and columns[-1] == EXTRA_FIELDS_KEY and type(values[-1]) is list:
        columns = columns[:-1]
        values[-1:] = values[-1]
    normaliser = _normaliser(columns)
    if type(normaliser) is FileRefused:
        raise RowError(RejectReason.INVALID_RECORD, f"no schema_version, and not a TLC row: {normaliser.detail}")
    assert isinstance(normaliser, TripNormaliser)
    fields = [value if type(value) is str else _cell(value, columns, index) for index, value in enumerate(values)]
    trip = normaliser.normalise(fields, 0)
    trip["source"] = {"shard_id": shard_id, "sequence_number": sequence_number}
    return trip


@functools.lru_cache(maxsize=_MAX_HEADERS)
def _normaliser(columns: tuple[str, ...]) -> TripNormaliser | FileRefused:
    """The header of `columns`, resolved as a file's header is (and its refusal, kept too)."""
    try:
        return TripNormaliser(resolve_header(columns, source_name=_SOURCE_NAME))
    except FileRefused as refused:
        return refused


def _cell(value: Any, columns: tuple[str, ...], index: int) -> str:
    """A JSON value other than a string -> the text of a CSV cell (module doc)."""
    kind = type(value)
    if kind is float:
        return repr(value)
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    name = columns[index] if index < len(columns) else "an extra field"
    raise RowError(RejectReason.INVALID_RECORD, f"{name}: a JSON {kind.__name__}, not a text or a number", name)
