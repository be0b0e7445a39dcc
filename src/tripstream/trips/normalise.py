"""Raw rows -> canonical trips (ARCHITECTURE.md, "Canonical trip"), or a reject with a stable reason.

The header is resolved once into a plan of (canonical field, column index, parser); each row then costs
one pass over that plan. Parsers return the canonical value or raise `RowError`.
"""

from __future__ import annotations

import csv
import hashlib
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

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
    # Two rows of one file with the same trip_id column value and different content.
    CONFLICTING_TRIP_ID = "conflicting_trip_id"
    REPEATED_HEADER = "repeated_header"
    # The csv module cannot split the line (a stray quote, a field over its size limit).
    MALFORMED_CSV = "malformed_csv"
    # Reader level (CSV lines that are not text rows at all).
    LINE_TOO_LONG = "line_too_long"
    BINARY_DATA = "binary_data"
    # Consumer side: a Kinesis record that is not a canonical trip.
    UNDECODABLE_RECORD = "undecodable_record"
    INVALID_RECORD = "invalid_record"


class RowError(ValueError):
    """One row (or record) cannot be turned into a canonical trip."""

    def __init__(self, reason: RejectReason, detail: str, column: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        # The plain string (equal to the enum member): it goes into JSON as a value and as a key (counts by
        # reason), and orjson refuses str subclasses as keys.
        self.reason: str = reason.value
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
#
# Numbers: the value of a numeric text is the binary double it denotes, in its shortest decimal form (what
# `repr()` prints), rounded half-even to the field's places. For the texts people write ("12.50", "0.57") that is
# the decimal text itself; for the 17-digit texts of the 2009-2015 files ("0.56999999999999995") it is the value
# the TLC's software meant (0.57). A Parquet file holds the same doubles, so a trip gets the same values, and
# the same trip_id, whether it is read from a CSV or from a Parquet file made from it.
# Accepted: ASCII digits, one sign, one dot, an exponent. Refused: underscores (`1_000`) and non-ASCII digits,
# which Python's float() would accept but no CSV writer produces.

_CENT = Decimal("0.01")
_MICRO_DEGREE = Decimal("0.000001")
_HALF = {2: 0.005, 6: 0.0000005}
_NEAR_TIE_RANGE = 1e6
_SLOW_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?"
    r" ?(?:UTC|GMT|Z|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII | re.IGNORECASE,
)
_US_TIMESTAMP_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M")
NEW_YORK = ZoneInfo("America/New_York")


def parse_timestamp(text: str) -> str:
    """NYC wall time as written in the source -> `YYYY-MM-DDTHH:MM:SS`.

    Accepted: `YYYY-MM-DD HH:MM[:SS]` with a space or a `T`, fractional seconds (dropped, as a meter counts
    whole seconds), the US form of the TLC's open-data exports (`01/31/2019 11:59:00 PM`), and a UTC offset.
    A time marked UTC (`Z`, ` UTC`, `+00:00`) is taken as NYC wall time: that is how BigQuery's TIMESTAMP
    copies of the TLC data (and Spark jobs running in UTC) label the TLC's local times. Any other offset
    denotes an instant, converted to NYC wall time.
    """
    # Fast path, the form of nearly every row. The dash at 7 keeps out what fromisoformat takes beyond the
    # documented forms: ISO week dates (`2019-W03-4`, which it reads as 2019-01-17).
    if (
        len(text) == 19
        and text[10] in " T"
        and text[4] == "-"
        and text[7] == "-"
        and text[13] == ":"
        and text[16] == ":"
    ):
        try:
            datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return text[:10] + "T" + text[11:]
    stripped = text.strip()
    try:
        match = _SLOW_TIMESTAMP.fullmatch(stripped)
        if match:
            year, month, day, hour, minute, second, sign, offset_hours, offset_minutes = match.groups()
            value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
            if sign is not None and (offset_hours != "00" or offset_minutes != "00"):
                offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
                zone = timezone(offset if sign == "+" else -offset)
                value = value.replace(tzinfo=zone).astimezone(NEW_YORK).replace(tzinfo=None)
            return value.isoformat()
        if stripped[:1].isdigit() and "/" in stripped:
            for fmt in _US_TIMESTAMP_FORMATS:
                try:
                    return datetime.strptime(stripped, fmt).isoformat()
                except ValueError:
                    continue
    except (ValueError, OverflowError) as exc:
        raise RowError(RejectReason.INVALID_TIMESTAMP, f"{text!r}: {exc}") from None
    raise RowError(RejectReason.INVALID_TIMESTAMP, f"{text!r} is not a date and time")


def _not_a_number(text: str) -> RowError:
    return RowError(RejectReason.INVALID_NUMBER, f"{text!r} is not a number")


def _beyond(text: str, value: float) -> RowError:
    if math.isfinite(value):
        return RowError(RejectReason.NUMBER_OUT_OF_RANGE, f"{text!r} is out of range (limit {MAX_ABS_AMOUNT:g})")
    return RowError(RejectReason.NON_FINITE_NUMBER, f"{text!r} is not a finite number")


def _decimal(text: str, places: int, quantum: Decimal) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _not_a_number(text) from None
    if not -MAX_ABS_AMOUNT < value < MAX_ABS_AMOUNT:  # also false for NaN
        raise _beyond(text, value)
    if "_" in text or not text.strip().isascii():
        raise _not_a_number(text)
    dot = text.find(".")
    # Fast path: at most `places` digits after the dot and no exponent, or a whole value: the double is already
    # the exact decimal.
    if (dot != -1 and len(text) - dot <= places + 1 and "e" not in text and "E" not in text) or (
        dot == -1 and value.is_integer()
    ):
        return value + 0.0  # + 0.0 turns -0.0 into 0.0
    if -_NEAR_TIE_RANGE < value < _NEAR_TIE_RANGE:
        # round() rounds the double itself, correctly. That is the shortest form's rounding too unless a rounding
        # boundary lies between the two, i.e. unless the double is within an ulp (< 1.2e-10 here) of a tie.
        rounded = round(value, places)
        if abs(abs(value - rounded) - _HALF[places]) > 1e-9:
            return rounded + 0.0
    shortest = repr(value)
    return float(Decimal(shortest).quantize(quantum, rounding=ROUND_HALF_EVEN)) + 0.0


def parse_money(text: str) -> float:
    """Money and distance: half-even to 2 places (`0.56999999999999995` -> 0.57)."""
    return _decimal(text, 2, _CENT)


def parse_coordinate(text: str) -> float:
    """Longitude / latitude: half-even to 6 places (about 10 cm)."""
    return _decimal(text, 6, _MICRO_DEGREE)


def parse_integer(text: str) -> int:
    """A count or code; `1.0` and `1e2` (Parquet exports write counts as doubles) are whole numbers too."""
    try:
        number = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise _not_a_number(text) from None
        if not -MAX_ABS_AMOUNT < value < MAX_ABS_AMOUNT:
            raise _beyond(text, value) from None
        if not value.is_integer():
            raise RowError(RejectReason.INVALID_NUMBER, f"{text!r} is not a whole number") from None
        number = int(value)
    if "_" in text or not text.strip().isascii():
        raise _not_a_number(text)
    if not -MAX_ABS_AMOUNT < number < MAX_ABS_AMOUNT:
        raise _beyond(text, float(number))
    return number


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
        try:
            return next(csv.reader([line]))
        except csv.Error as exc:  # one bad line is a reject, never a crash of the file
            raise RowError(RejectReason.MALFORMED_CSV, f"the line cannot be split as CSV ({exc})") from None
    return line.split(",")


# Parsed values of the low-cardinality fields (codes, counts, surcharges, most fares) are remembered per file:
# a dict lookup instead of a parse for most fields of most rows.
_MEMO_KINDS = frozenset({Kind.MONEY, Kind.INTEGER, Kind.VENDOR, Kind.PAYMENT, Kind.FLAG})
_MEMO_LIMIT = 4096
_MISS: Any = object()
_TRIP_TEMPLATE: CanonicalTrip = dict.fromkeys(CANONICAL_FIELDS)
_CONTENT = operator.itemgetter(*CANONICAL_FIELDS, "service")


@dataclass
class TripNormaliser:
    """Turns the rows of one file into canonical trips."""

    header: Header
    source_bucket: str | None = None
    source_key: str | None = None
    _plan: tuple[tuple[str, int, Callable[[str], Any], dict[str, Any] | None], ...] = field(init=False, repr=False)
    _has_trip_id: bool = field(init=False, repr=False)
    _width: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._plan = tuple(
            (name, index, _PARSERS[kind], {"": None} if kind in _MEMO_KINDS else None)
            for name, index, kind in self.header.plan
        )
        self._has_trip_id = self.header.has_trip_id
        self._width = self.header.width

    def normalise(self, fields: Sequence[str], row_number: int) -> CanonicalTrip:
        """One row's fields -> a canonical trip dict (the Kinesis record). Raises `RowError`."""
        if len(fields) != self._width:
            fields = self._fit(fields)
        if max(map(len, fields)) > MAX_FIELD_LENGTH:
            raise self._too_long(fields)
        trip = _TRIP_TEMPLATE.copy()
        for name, index, parse, memo in self._plan:
            text = fields[index]
            if memo is not None:
                value = memo.get(text, _MISS)
                if value is not _MISS:
                    trip[name] = value
                    continue
            if not text or text.isspace():
                value = None
            else:
                try:
                    value = parse(text)
                except RowError as error:
                    raise self._explain(error, index, fields) from None
            if memo is not None and len(memo) < _MEMO_LIMIT:
                memo[text] = value
            trip[name] = value
        if trip["pickup_datetime"] is None or trip["dropoff_datetime"] is None:
            raise self._missing_timestamp(trip)
        trip_id = trip.pop("trip_id", None)
        trip["service"] = self.header.service
        if self._has_trip_id:
            if not trip_id:
                raise RowError(RejectReason.INVALID_TRIP_ID, "the trip_id column is empty", "trip_id")
        else:
            trip_id = derive_trip_id(trip)
        trip["trip_id"] = trip_id
        trip["schema_version"] = SCHEMA_VERSION
        trip["source"] = {"bucket": self.source_bucket, "key": self.source_key, "row": row_number}
        return trip

    # The methods below run for rejected rows only.

    def _fit(self, fields: Sequence[str]) -> Sequence[str]:
        """Rows longer than the header are fine when the extra fields are empty (green 2014 has two)."""
        width = self.header.width
        if len(fields) > width and not any(f.strip() for f in fields[width:]):
            return fields[:width]
        if _looks_like_header(fields):
            raise _repeated_header()
        non_empty = sum(1 for f in fields if f.strip())
        raise RowError(
            RejectReason.WRONG_FIELD_COUNT,
            f"{len(fields)} fields ({non_empty} non-empty), the header has {width}",
        )

    def _too_long(self, fields: Sequence[str]) -> RowError:
        longest = max(range(len(fields)), key=lambda i: len(fields[i]))
        return RowError(
            RejectReason.FIELD_TOO_LONG,
            f"{len(fields[longest])} characters (limit {MAX_FIELD_LENGTH})",
            self.header.columns[longest].strip(),
        )

    def _explain(self, error: RowError, index: int, fields: Sequence[str]) -> RowError:
        if _looks_like_header(fields):
            return _repeated_header()
        error.column = self.header.columns[index].strip()
        return error

    def _missing_timestamp(self, trip: CanonicalTrip) -> RowError:
        name = "pickup_datetime" if trip["pickup_datetime"] is None else "dropoff_datetime"
        column = next(self.header.columns[i].strip() for n, i, _ in self.header.plan if n == name)
        return RowError(RejectReason.MISSING_TIMESTAMP, f"{column} is empty", column)


def _looks_like_header(fields: Sequence[str]) -> bool:
    """A header line in the middle of a file: two files concatenated."""
    canonical = {ALIASES.get(column_key(f)) for f in fields}
    return "pickup_datetime" in canonical and "dropoff_datetime" in canonical


def _repeated_header() -> RowError:
    return RowError(RejectReason.REPEATED_HEADER, "a header line in the middle of the file (files concatenated?)")


def derive_trip_id(trip: CanonicalTrip) -> str:
    """Deterministic id from every canonical field except the source: the same trip always gets it.

    The recipe (tests/expected.py computes it independently): the JSON array (orjson) of the values of
    CANONICAL_FIELDS in order, then `service`; its BLAKE2b-128 digest in hex. Values are the canonical ones
    (floats already rounded, codes mapped, timestamps `YYYY-MM-DDTHH:MM:SS`, null for empty), so the same trip
    gets the same id from any file, era or format.
    """
    return hashlib.blake2b(orjson.dumps(_CONTENT(trip)), digest_size=16).hexdigest()


def trip_as_row(trip: CanonicalTrip) -> list[str]:
    """A canonical trip written back as CSV fields, in CANONICAL_FIELDS order (a header of those names reads
    them back). Normalising that row again gives the same trip: normalisation is idempotent."""
    return ["" if trip.get(name) is None else str(trip[name]) for name in CANONICAL_FIELDS]
