"""One canonical trip <-> one Kinesis record (UTF-8 JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from tripstream.trips.normalise import CanonicalTrip, RejectReason, RowError
from tripstream.trips.schema import FIELDS, SCHEMA_VERSION, Kind

MAX_TRIP_ID_LENGTH = 256
_NUMERIC_KINDS = (Kind.MONEY, Kind.COORDINATE, Kind.INTEGER)


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


def _validate(trip: dict[str, Any]) -> None:
    version = trip.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RowError(RejectReason.INVALID_RECORD, f"unsupported schema_version {version!r}", "schema_version")
    trip_id = trip.get("trip_id")
    if not isinstance(trip_id, str) or not trip_id or len(trip_id) > MAX_TRIP_ID_LENGTH:
        raise RowError(RejectReason.INVALID_RECORD, f"trip_id {trip_id!r} is not a non-empty string", "trip_id")
    for name in ("pickup_datetime", "dropoff_datetime"):
        value = trip.get(name)
        try:
            if not isinstance(value, str) or len(value) != 19:
                raise ValueError
            datetime.fromisoformat(value)
        except ValueError:
            raise RowError(RejectReason.INVALID_RECORD, f"{name} {value!r} is not YYYY-MM-DDTHH:MM:SS", name) from None
    for name, (kind, _) in FIELDS.items():
        if kind in _NUMERIC_KINDS:
            value = trip.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise RowError(RejectReason.INVALID_RECORD, f"{name} {value!r} is not a number", name)
