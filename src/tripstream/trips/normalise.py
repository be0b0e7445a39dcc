"""Raw rows -> canonical trips (ARCHITECTURE.md, "Canonical trip"), or a reject with a stable reason.

The header is resolved once into a plan of (canonical field, column index, parser); each row then costs
one pass over that plan. Parsers return the canonical value or raise `RowError`.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import orjson

from tripstream.trips.schema import (
    ALIASES,
    CANONICAL_FIELDS,
    FIELDS,
    FLAG_CODES,
    GREEN_MARKERS,
    PAYMENT_CODES,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    VENDOR_CODES,
    YELLOW_MARKERS,
    Kind,
    column_key,
)

# No real TLC field is longer than ~25 characters; a longer one is a broken row (or an attack).
MAX_FIELD_LENGTH = 64
# Amounts beyond this are not odd-but-real values, they are garbage (and would not fit DynamoDB's 38 digits).
MAX_ABS_AMOUNT = 1e9

CanonicalTrip = dict[str, Any]


class RejectReason(StrEnum):
    """Why a row or record was not sent. Stable codes: they appear in rejects files and summaries."""

    INVALID_UTF8 = "invalid_utf8"
    WRONG_FIELD_COUNT = "wrong_field_count"
    FIELD_TOO_LONG = "field_too_long"
    MISSING_TIMESTAMP = "missing_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_NUMBER = "invalid_number"
    NON_FINITE_NUMBER = "non_finite_number"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    INVALID_TRIP_ID = "invalid_trip_id"
    # Consumer side: a Kinesis record that is not a canonical trip.
    UNDECODABLE_RECORD = "undecodable_record"
    INVALID_RECORD = "invalid_record"


class RowError(ValueError):
    """One row (or record) cannot be turned into a canonical trip."""

    def __init__(self, reason: RejectReason, detail: str, column: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.column = column


class FileRefused(ValueError):
    """A whole file is refused before anything of it is sent."""

    def __init__(self, name: str, problem: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.problem = problem
        self.detail = detail


# ---------------------------------------------------------------- value parsers

_CENT = Decimal("0.01")
_MICRO_DEGREE = Decimal("0.000001")
_SLOW_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2})[ T](\d{1,2}:\d{2})(:\d{2})?(\.\d+)?(?: ?(?:UTC|Z|[+-]00:?00))?$", re.IGNORECASE
)
_US_TIMESTAMP_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M")


def parse_timestamp(text: str) -> str:
    """NYC wall time as written in the source -> `YYYY-MM-DDTHH:MM:SS` (fractional seconds dropped)."""
    if len(text) == 19 and text[10] in " T" and text[4] == "-" and text[13] == ":" and text[16] == ":":
        try:
            datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return text[:10] + "T" + text[11:]
    stripped = text.strip()
    match = _SLOW_TIMESTAMP.match(stripped)
    try:
        if match:
            date_part, hour_minute, seconds, _fraction = match.groups()
            year, month, day = (int(p) for p in date_part.split("-"))
            hour, minute = (int(p) for p in hour_minute.split(":"))
            value = datetime(year, month, day, hour, minute, int(seconds[1:]) if seconds else 0)
            return value.isoformat()
        for fmt in _US_TIMESTAMP_FORMATS:
            try:
                return datetime.strptime(stripped, fmt).isoformat()
            except ValueError:
                continue
    except ValueError as exc:
        raise RowError(RejectReason.INVALID_TIMESTAMP, f"{text!r}: {exc}") from None
    raise RowError(RejectReason.INVALID_TIMESTAMP, f"{text!r} is not a date and time")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RowError(RejectReason.INVALID_NUMBER, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(RejectReason.NON_FINITE_NUMBER, f"{text!r} is not a finite number")
    if abs(value) >= MAX_ABS_AMOUNT:
        raise RowError(RejectReason.NUMBER_OUT_OF_RANGE, f"{text!r} is out of range")
    return value


def _rounded(text: str, places: int, quantum: Decimal) -> float:
    value = _number(text)
    stripped = text.strip()
    dot = stripped.find(".")
    # Fast path: at most `places` decimals and no exponent -> the float is already the exact decimal.
    if (dot == -1 or len(stripped) - dot - 1 <= places) and "e" not in stripped and "E" not in stripped:
        return value + 0.0  # + 0.0 turns -0.0 into 0.0
    try:
        return float(Decimal(stripped).quantize(quantum, rounding=ROUND_HALF_EVEN)) + 0.0
    except InvalidOperation:
        raise RowError(RejectReason.INVALID_NUMBER, f"{text!r} is not a decimal number") from None


def parse_money(text: str) -> float:
    """Money and distance: decimal, half-even to 2 places (`0.56999999999999995` -> 0.57)."""
    return _rounded(text, 2, _CENT)


def parse_coordinate(text: str) -> float:
    return _rounded(text, 6, _MICRO_DEGREE)


def parse_integer(text: str) -> int:
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    value = _number(stripped)  # parquet exports write counts as 1.0
    if not value.is_integer():
        raise RowError(RejectReason.INVALID_NUMBER, f"{text!r} is not a whole number")
    return int(value)


def _coded(codes: dict[str, int]) -> Callable[[str], int | str]:
    def parse(text: str) -> int | str:
        stripped = text.strip()
        try:
            return parse_integer(stripped)
        except RowError:
            pass
        code = codes.get(column_key(stripped))
        # No mapping in the TLC data dictionary (e.g. vendor DDS): keep the original.
        return stripped if code is None else code

    return parse


def parse_flag(text: str) -> str:
    stripped = text.strip()
    return FLAG_CODES.get(stripped.casefold(), stripped)


def parse_text(text: str) -> str:
    return text.strip()


_PARSERS: dict[Kind, Callable[[str], Any]] = {
    Kind.TIMESTAMP: parse_timestamp,
    Kind.MONEY: parse_money,
    Kind.COORDINATE: parse_coordinate,
    Kind.INTEGER: parse_integer,
    Kind.VENDOR: _coded(VENDOR_CODES),
    Kind.PAYMENT: _coded(PAYMENT_CODES),
    Kind.FLAG: parse_flag,
    Kind.TEXT: parse_text,
}


# ---------------------------------------------------------------- header


@dataclass(frozen=True)
class Header:
    """A resolved header: which column feeds which canonical field."""

    columns: tuple[str, ...]
    plan: tuple[tuple[str, int, Kind], ...]
    ignored: tuple[str, ...]
    service: str

    @property
    def has_trip_id(self) -> bool:
        return any(name == "trip_id" for name, _, _ in self.plan)

    @property
    def width(self) -> int:
        return len(self.columns)


def resolve_header(columns: Sequence[str], *, source_name: str, service_hint: str | None = None) -> Header:
    """Match columns to canonical fields by name (case-insensitive, spaces ignored, any order)."""
    plan: list[tuple[str, int, Kind]] = []
    taken: set[str] = set()
    ignored: list[str] = []
    keys = [column_key(c) for c in columns]
    for index, key in enumerate(keys):
        canonical = ALIASES.get(key)
        if canonical is None or canonical in taken:
            ignored.append(columns[index])
            continue
        taken.add(canonical)
        plan.append((canonical, index, FIELDS[canonical][0]))
    missing = [name for name in REQUIRED_FIELDS if name not in taken]
    if missing:
        shown = ", ".join(c.strip() for c in columns[:30]) or "(none)"
        raise FileRefused(
            source_name,
            "missing_columns",
            f"the header has no {' and no '.join(_describe_missing(m) for m in missing)} column "
            f"(columns found: {shown})",
        )
    return Header(tuple(columns), tuple(plan), tuple(ignored), _service(set(keys), service_hint, source_name))


def _describe_missing(canonical: str) -> str:
    aliases = FIELDS[canonical][1]
    return f"{canonical.split('_', maxsplit=1)[0]} time ({' / '.join(aliases)})"


def _service(keys: set[str], hint: str | None, source_name: str) -> str:
    if hint:
        return hint
    if keys & GREEN_MARKERS:
        return "green"
    if keys & YELLOW_MARKERS:
        return "yellow"
    lowered = source_name.rsplit("/", 1)[-1].lower()
    for service in ("green", "fhvhv", "fhv", "yellow"):
        if service in lowered:
            return service
    return "yellow"


# ---------------------------------------------------------------- rows


def split_csv_line(line: str) -> list[str]:
    """One CSV line -> fields; the csv module only when the line has quotes (TLC files rarely do)."""
    if '"' in line:
        return next(csv.reader([line]))
    return line.split(",")


@dataclass
class TripNormaliser:
    """Turns the rows of one file into canonical trips."""

    header: Header
    source_bucket: str | None = None
    source_key: str | None = None
    _plan: tuple[tuple[str, int, Callable[[str], Any]], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._plan = tuple((name, index, _PARSERS[kind]) for name, index, kind in self.header.plan)

    def normalise(self, fields: Sequence[str], row_number: int) -> CanonicalTrip:
        """One row's fields -> a canonical trip dict (the Kinesis record). Raises `RowError`."""
        width = self.header.width
        if len(fields) != width:
            if len(fields) < width or any(f.strip() for f in fields[width:]):
                raise RowError(
                    RejectReason.WRONG_FIELD_COUNT,
                    f"{sum(1 for f in fields if f.strip())} non-empty of {len(fields)} fields, header has {width}",
                )
            fields = fields[:width]
        if max(map(len, fields), default=0) > MAX_FIELD_LENGTH:
            longest = max(range(width), key=lambda i: len(fields[i]))
            raise RowError(
                RejectReason.FIELD_TOO_LONG,
                f"{len(fields[longest])} characters (limit {MAX_FIELD_LENGTH})",
                self.header.columns[longest].strip(),
            )
        trip: CanonicalTrip = dict.fromkeys(CANONICAL_FIELDS)
        for name, index, parse in self._plan:
            text = fields[index]
            if text == "" or text.isspace():
                continue
            try:
                trip[name] = parse(text)
            except RowError as error:
                error.column = self.header.columns[index].strip()
                raise
        for name in REQUIRED_FIELDS:
            if trip[name] is None:
                raise RowError(RejectReason.MISSING_TIMESTAMP, f"{name} is empty", name)
        trip_id = trip.pop("trip_id", None)
        trip["service"] = self.header.service
        if self.header.has_trip_id:
            if not trip_id:
                raise RowError(RejectReason.INVALID_TRIP_ID, "the trip_id column is empty", "trip_id")
        else:
            trip_id = derive_trip_id(trip)
        trip["trip_id"] = trip_id
        trip["schema_version"] = SCHEMA_VERSION
        trip["source"] = {"bucket": self.source_bucket, "key": self.source_key, "row": row_number}
        return trip


def derive_trip_id(trip: CanonicalTrip) -> str:
    """Deterministic id from every canonical field except the source: the same trip always gets it."""
    content = orjson.dumps([trip.get(name) for name in (*CANONICAL_FIELDS, "service")])
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def trip_as_row(trip: CanonicalTrip) -> list[str]:
    """A canonical trip written back as CSV fields (in CANONICAL_FIELDS order); used to check idempotence."""
    return ["" if trip.get(name) is None else str(trip[name]) for name in CANONICAL_FIELDS]


def describe_rejects(reasons: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items()))
