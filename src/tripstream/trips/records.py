"""One canonical trip <-> one Kinesis record (UTF-8 JSON).

`decode_record` is the consumer's gate, for both formats of the stream: a JSON object with `schema_version` is a
canonical trip (`decode_trip`'s check, the fast path), one without it a raw TLC row (`trips.raw_rows`). Whatever it
returns can be classified and written without a type error; whatever it refuses raises `RowError`
(`undecodable_record`: not a JSON object; `invalid_record`: not a trip; a raw row's reasons are a file row's).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson

from tripstream.trips.normalise import MAX_ABS_AMOUNT, MAX_FIELD_LENGTH, CanonicalTrip, RejectReason, RowError
from tripstream.trips.raw_rows import normalise_raw_row
from tripstream.trips.schema import FIELDS, SCHEMA_VERSION, Kind

MAX_TRIP_ID_LENGTH = 256
_MIN_ABS_NUMBER = 1e-130  # the smallest magnitude of a DynamoDB number other than 0
_NUMBERS = tuple(name for name, (kind, _) in FIELDS.items() if kind in (Kind.MONEY, Kind.COORDINATE, Kind.INTEGER))
_CODES = tuple(name for name, (kind, _) in FIELDS.items() if kind in (Kind.VENDOR, Kind.PAYMENT))
_TEXTS = (*(name for name, (kind, _) in FIELDS.items() if kind is Kind.FLAG), "service")
_NUMBER_TYPES = frozenset({int, float})


def encode_trip(trip: CanonicalTrip) -> bytes:
    return orjson.dumps(trip)


def decode_record(data: bytes, shard_id: str, sequence_number: str) -> CanonicalTrip:
    """A Kinesis record's data, in either format -> a validated canonical trip. Raises `RowError`."""
    record = _load(data, python_json=True)
    if "schema_version" in record:
        _validate(record)
        return record
    return normalise_raw_row(record, shard_id, sequence_number)


def decode_trip(data: bytes) -> CanonicalTrip:
    """A canonical record's data -> a validated canonical trip. Raises `RowError` (undecodable / invalid)."""
    trip = _load(data)
    _validate(trip)
    return trip


def _load(data: bytes, *, python_json: bool = False) -> dict[str, Any]:
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if not python_json:
            raise RowError(RejectReason.UNDECODABLE_RECORD, f"not UTF-8 JSON: {exc}") from None
        record = _python_json_row(data, exc)
    if not isinstance(record, dict):
        raise RowError(RejectReason.UNDECODABLE_RECORD, f"JSON {type(record).__name__}, not an object")
    return record


def _python_json_row(data: bytes, error: orjson.JSONDecodeError) -> dict[str, Any]:
    """What Python's `json.dumps` writes and orjson refuses (NaN, Infinity: the lab's `float(x)` of `nan` or
    `1e999`), read for a raw row only, so that such a cell is the file's reject (`non_finite_number`), not an
    undecodable record. Anything else orjson refuses stays undecodable."""
    try:
        record = json.loads(data.decode("utf-8"))
        if isinstance(record, dict) and "schema_version" not in record:
            orjson.dumps(record)  # refuses lone surrogates, as orjson.loads does
            return record
    except (ValueError, RecursionError, orjson.JSONEncodeError):
        pass
    raise RowError(RejectReason.UNDECODABLE_RECORD, f"not UTF-8 JSON: {error}") from None


def _invalid(name: str, value: Any, expected: str) -> RowError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return RowError(RejectReason.INVALID_RECORD, f"{name} {shown} is not {expected}", name)


def _validate(trip: dict[str, Any]) -> None:
    version = trip.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise RowError(RejectReason.INVALID_RECORD, f"unsupported schema_version {version!r}", "schema_version")
    trip_id = trip.get("trip_id")
    if not isinstance(trip_id, str) or not trip_id.strip() or len(trip_id) > MAX_TRIP_ID_LENGTH:
        raise _invalid("trip_id", trip_id, f"a non-empty string of at most {MAX_TRIP_ID_LENGTH} characters")
    for name in ("pickup_datetime", "dropoff_datetime"):
        value = trip.get(name)
        try:
            if not isinstance(value, str) or len(value) != 19 or value[10] != "T":
                raise ValueError
            datetime.fromisoformat(value)
        except ValueError:
            raise _invalid(name, value, "YYYY-MM-DDTHH:MM:SS") from None
    for name in _NUMBERS:
        value = trip.get(name)
        # type() rather than isinstance(): a bool is an int to isinstance, and never a number of a trip.
        if value is not None and (type(value) not in _NUMBER_TYPES or not -MAX_ABS_AMOUNT < value < MAX_ABS_AMOUNT):
            raise _invalid(name, value, f"a number between -{MAX_ABS_AMOUNT:g} and {MAX_ABS_AMOUNT:g}")
        if value and abs(value) < _MIN_ABS_NUMBER:
            # DynamoDB refuses the whole BatchWriteItem call for it ("Number underflow"), on AWS and DynamoDB Local.
            raise _invalid(name, value, f"0 or at least {_MIN_ABS_NUMBER:g} in magnitude (DynamoDB's smallest)")
    for name in _CODES:
        value = trip.get(name)
        if value is None:
            continue
        kind = type(value)
        if not (
            (kind is int and -MAX_ABS_AMOUNT < value < MAX_ABS_AMOUNT)
            or (kind is str and len(value) <= MAX_FIELD_LENGTH)
        ):
            raise _invalid(name, value, "a code (a whole number or a short text)")
    for name in _TEXTS:
        value = trip.get(name)
        if value is not None and (type(value) is not str or len(value) > MAX_FIELD_LENGTH):
            raise _invalid(name, value, "a short text")
