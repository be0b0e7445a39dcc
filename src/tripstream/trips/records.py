"""One canonical trip <-> one Kinesis record (UTF-8 JSON).

`decode_trip` is the consumer's gate: whatever it returns can be classified and written without a type error;
whatever it refuses raises `RowError` (`undecodable_record`: not a JSON object; `invalid_record`: not a trip).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from tripstream.trips.normalise import MAX_ABS_AMOUNT, MAX_FIELD_LENGTH, CanonicalTrip, RejectReason, RowError
from tripstream.trips.schema import FIELDS, SCHEMA_VERSION, Kind

MAX_TRIP_ID_LENGTH = 256
_MIN_ABS_NUMBER = 1e-130  # the smallest magnitude of a DynamoDB number other than 0
_NUMBERS = tuple(name for name, (kind, _) in FIELDS.items() if kind in (Kind.MONEY, Kind.COORDINATE, Kind.INTEGER))
_CODES = tuple(name for name, (kind, _) in FIELDS.items() if kind in (Kind.VENDOR, Kind.PAYMENT))
_TEXTS = (*(name for name, (kind, _) in FIELDS.items() if kind is Kind.FLAG), "service")
_NUMBER_TYPES = frozenset({int, float})


def encode_trip(trip: CanonicalTrip) -> bytes:
    return orjson.dumps(trip)


def decode_trip(data: bytes) -> CanonicalTrip:
    """A Kinesis record's data -> a validated canonical trip. Raises `RowError` (undecodable / invalid)."""
    try:
        trip = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RowError(RejectReason.UNDECODABLE_RECORD, f"not UTF-8 JSON: {exc}") from None
    if not isinstance(trip, dict):
        raise RowError(RejectReason.UNDECODABLE_RECORD, f"JSON {type(trip).__name__}, not an object")
    _validate(trip)
    return trip


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
