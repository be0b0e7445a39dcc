"""What the three tables must hold after `tripstream run FILE`, computed from the CSV by a second, plain route.

This module is the tests' reference and must stay independent of the code it checks: it never imports
`tripstream.trips` (nor anything that does). It reads the file with `csv`, computes every value with `decimal`
and `zoneinfo` straight from ARCHITECTURE.md's rules, and knows only the column names of the real samples and of
the generated files. It covers the samples in ../shared/data/tlc (and files derived from them) and the generated
trips (tests/support/trips.py), not every input the product reads.

The one thing it shares with the product is the documented trip_id recipe (tripstream.trips.normalise.
derive_trip_id): BLAKE2b-128 (hex) of the JSON array of the canonical values in the order of `CANONICAL_ORDER`,
then the service. Money and distance are floats rounded half-even to 2 places, coordinates to 6, codes are
the TLC data dictionary's numbers, timestamps `YYYY-MM-DDTHH:MM:SS`, empty fields null.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

NEW_YORK = ZoneInfo("America/New_York")
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")

# The defaults of ARCHITECTURE.md's analytics table.
HIGH_VALUE_OVER = Decimal("50.00")
SHORT_UNDER_MINUTES = Decimal(10)
LONG_FROM_MINUTES = Decimal(30)
MAX_DURATION = timedelta(hours=24)
LOW_FARE_PER_MILE_UNDER = Decimal("3.00")
HIGH_FARE_PER_MILE_FROM = Decimal("6.00")

# The canonical fields, in the order the trip_id recipe hashes them.
CANONICAL_ORDER = (
    "vendor_id",
    "pickup_datetime",
    "dropoff_datetime",
    "passenger_count",
    "trip_distance",
    "rate_code",
    "store_and_fwd_flag",
    "payment_type",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "congestion_surcharge",
    "airport_fee",
    "cbd_congestion_fee",
    "ehail_fee",
    "total_amount",
    "pickup_location_id",
    "dropoff_location_id",
    "pickup_longitude",
    "pickup_latitude",
    "dropoff_longitude",
    "dropoff_latitude",
    "trip_type",
)

# Column names seen in the real samples (lower-cased, stripped) -> canonical field.
COLUMNS = {
    "vendorid": "vendor_id",
    "vendor_id": "vendor_id",
    "tpep_pickup_datetime": "pickup_datetime",
    "lpep_pickup_datetime": "pickup_datetime",
    "pickup_datetime": "pickup_datetime",
    "tpep_dropoff_datetime": "dropoff_datetime",
    "lpep_dropoff_datetime": "dropoff_datetime",
    "dropoff_datetime": "dropoff_datetime",
    "passenger_count": "passenger_count",
    "trip_distance": "trip_distance",
    "ratecodeid": "rate_code",
    "rate_code": "rate_code",
    "store_and_fwd_flag": "store_and_fwd_flag",
    "payment_type": "payment_type",
    "fare_amount": "fare_amount",
    "surcharge": "extra",
    "extra": "extra",
    "mta_tax": "mta_tax",
    "tip_amount": "tip_amount",
    "tolls_amount": "tolls_amount",
    "improvement_surcharge": "improvement_surcharge",
    "imp_surcharge": "improvement_surcharge",
    "congestion_surcharge": "congestion_surcharge",
    "airport_fee": "airport_fee",
    "ehail_fee": "ehail_fee",
    "total_amount": "total_amount",
    "pulocationid": "pickup_location_id",
    "pickup_location_id": "pickup_location_id",
    "dolocationid": "dropoff_location_id",
    "dropoff_location_id": "dropoff_location_id",
    "pickup_longitude": "pickup_longitude",
    "pickup_latitude": "pickup_latitude",
    "dropoff_longitude": "dropoff_longitude",
    "dropoff_latitude": "dropoff_latitude",
    "trip_type": "trip_type",
}
MONEY = {
    "trip_distance",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "congestion_surcharge",
    "airport_fee",
    "ehail_fee",
    "total_amount",
}
COORDINATES = {"pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude"}
WHOLE = {"passenger_count", "rate_code", "pickup_location_id", "dropoff_location_id", "trip_type"}
# TLC data dictionary: 1 Creative Mobile Technologies, 2 VeriFone (now Curb); 1 credit card, 2 cash, 3 no charge,
# 4 dispute, 5 unknown.
VENDORS = {"CMT": 1, "VTS": 2}
PAYMENTS = {"CRD": 1, "CRE": 1, "CSH": 2, "CAS": 2, "NOC": 3, "DIS": 4, "UNK": 5, "NA": 5}
FLAGS = {"Y": "Y", "N": "N", "1": "Y", "0": "N"}


@dataclass
class Expected:
    """The expected outcome of one file."""

    rows: int = 0  # data rows (blank lines not counted)
    blank_lines: int = 0
    trips: dict[str, dict[str, object]] = field(default_factory=dict)  # trip_id -> canonical values
    high_value: dict[str, dict[str, object]] = field(default_factory=dict)
    duration: dict[str, dict[str, object]] = field(default_factory=dict)
    fare_ratio: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, dict[str, dict[str, object]]]:
        return {
            "high_value_trips": self.high_value,
            "trip_duration_analysis": self.duration,
            "distance_to_fare_ratio": self.fare_ratio,
        }


def read_rows(path: Path) -> tuple[list[str], Iterator[list[str]]]:
    """The header and the data rows of a CSV or .csv.gz (by the name: this reference trusts its inputs)."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    return next(reader), reader


def expected_for(path: Path, service: str | None = None) -> Expected:
    header, rows = read_rows(path)
    names = [COLUMNS.get(name.strip().lower()) for name in header]
    lowered = {name.strip().lower() for name in header}
    if service is None:
        green = "lpep_pickup_datetime" in lowered or "green" in path.name.lower()
        service = "green" if green else "yellow"
    result = Expected()
    for row in rows:
        if not "".join(row).strip():
            result.blank_lines += 1
            continue
        result.rows += 1
        trip: dict[str, object] = dict.fromkeys(CANONICAL_ORDER)
        for name, text in zip(names, row, strict=False):
            if name is not None and text.strip():
                trip[name] = value(name, text.strip())
        trip_id = hashlib.blake2b(
            orjson.dumps([trip[name] for name in CANONICAL_ORDER] + [service]), digest_size=16
        ).hexdigest()
        result.trips[trip_id] = trip
        _classify(result, trip_id, trip)
    return result


def value(name: str, text: str) -> object:
    if name in ("pickup_datetime", "dropoff_datetime"):
        # The samples write `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, nothing else.
        assert len(text) == 19 and text[10] in " T", text
        return datetime.fromisoformat(text).isoformat()
    if name in MONEY:
        return float(Decimal(text).quantize(CENT, rounding=ROUND_HALF_EVEN)) + 0.0
    if name in COORDINATES:
        return float(Decimal(text).quantize(MICRO, rounding=ROUND_HALF_EVEN)) + 0.0
    if name in WHOLE:
        return int(Decimal(text))
    if name == "vendor_id":
        return int(text) if text.isdigit() else VENDORS.get(text.upper(), text)
    if name == "payment_type":
        return int(text) if text.isdigit() else PAYMENTS.get(text.upper(), text)
    if name == "store_and_fwd_flag":
        return FLAGS.get(text.upper(), text)
    raise AssertionError(f"no rule for {name}")


def elapsed(pickup: str, dropoff: str) -> timedelta:
    """Real time between two NYC wall-clock times. In the repeated hour of November both are taken as the first
    occurrence, unless that puts the dropoff before the pickup: then the dropoff is the second one. The same
    wall-clock time twice is no time at all."""
    start = datetime.fromisoformat(pickup).replace(tzinfo=NEW_YORK)
    end = datetime.fromisoformat(dropoff).replace(tzinfo=NEW_YORK)
    utc = ZoneInfo("UTC")
    seconds = end.astimezone(utc) - start.astimezone(utc)
    if seconds < timedelta(0):
        later = end.replace(fold=1).astimezone(utc) - start.astimezone(utc)
        if later > timedelta(0):
            return later
    return seconds


def _classify(result: Expected, trip_id: str, trip: dict[str, object]) -> None:
    total = trip["total_amount"]
    if total is not None and Decimal(repr(total)) > HIGH_VALUE_OVER:
        result.high_value[trip_id] = {"total_amount": Decimal(repr(total)).quantize(CENT)}
    took = elapsed(str(trip["pickup_datetime"]), str(trip["dropoff_datetime"]))
    if timedelta(0) < took <= MAX_DURATION:
        minutes = Decimal(int(took.total_seconds())) / 60
        category = "short" if minutes < SHORT_UNDER_MINUTES else "medium" if minutes < LONG_FROM_MINUTES else "long"
        result.duration[trip_id] = {
            "duration_minutes": minutes.quantize(CENT, rounding=ROUND_HALF_EVEN),
            "duration_category": category,
        }
    distance, fare = trip["trip_distance"], trip["fare_amount"]
    if distance is not None and fare is not None:
        miles, dollars = Decimal(repr(distance)), Decimal(repr(fare))
        if miles > 0 and dollars > 0:
            per_mile = (dollars / miles).quantize(CENT, rounding=ROUND_HALF_EVEN)
            tier = (
                "low"
                if per_mile < LOW_FARE_PER_MILE_UNDER
                else "medium"
                if per_mile < HIGH_FARE_PER_MILE_FROM
                else "high"
            )
            result.fare_ratio[trip_id] = {"fare_per_mile": per_mile, "profitability_tier": tier}


# What zone_hourly_stats must hold (ARCHITECTURE.md, "Real-time aggregates"): every trip once, in the cell of its
# pickup zone (as text, "unknown" without one) and NYC local pickup hour (`YYYY-MM-DDTHH`).
AGGREGATE_COUNTERS = ("trips", "total_amount", "high_value_trips", "short", "medium", "long")
AGGREGATE_SUMS = ("fare_amount", "tip_amount", "trip_distance", "duration_minutes")


def expected_aggregates(*paths: Path) -> dict[tuple[str, str], dict[str, Decimal]]:
    """The cells of one or more files (a trip in two files counts once)."""
    trips: dict[str, tuple[dict[str, object], Expected]] = {}
    for path in paths:
        result = expected_for(path)
        for trip_id, trip in result.trips.items():
            trips.setdefault(trip_id, (trip, result))
    cells: dict[tuple[str, str], dict[str, Decimal]] = {}
    for trip_id, (trip, result) in trips.items():
        zone = trip["pickup_location_id"]
        cell = cells.setdefault(
            ("unknown" if zone is None else str(zone), str(trip["pickup_datetime"])[:13]),
            dict.fromkeys(AGGREGATE_COUNTERS, Decimal(0)),
        )
        cell["trips"] += 1
        for name in ("total_amount", "fare_amount", "tip_amount", "trip_distance"):
            if trip[name] is not None:
                cell[name] = cell.get(name, Decimal(0)) + Decimal(repr(trip[name])).quantize(CENT)
        total = trip["total_amount"]
        if total is not None and Decimal(repr(total)) < 0:  # a refund: counted apart as well
            cell["refunds"] = cell.get("refunds", Decimal(0)) + 1
            cell["refund_amount"] = cell.get("refund_amount", Decimal(0)) + Decimal(repr(total)).quantize(CENT)
        cell["high_value_trips"] += trip_id in result.high_value
        if trip_id in result.duration:
            duration = result.duration[trip_id]
            cell[str(duration["duration_category"])] += 1
            cell["duration_minutes"] = cell.get("duration_minutes", Decimal(0)) + Decimal(
                str(duration["duration_minutes"])
            )
    return cells
