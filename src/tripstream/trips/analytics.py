"""Canonical trip -> the items of the three analytics tables (ARCHITECTURE.md, "Analytics").

Numbers are `Decimal` built from strings, never from binary floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tripstream.trips.normalise import CanonicalTrip
from tripstream.trips.thresholds import Thresholds

NEW_YORK = ZoneInfo("America/New_York")
_CENT = Decimal("0.01")
Item = dict[str, Any]


@dataclass(frozen=True)
class TripItems:
    """What one trip writes: an item per table, or None where the trip does not qualify."""

    high_value: Item | None
    duration: Item | None
    fare_ratio: Item | None


def to_decimal(value: float | int) -> Decimal:
    # repr() of a float parsed from 2-place text is that text again: exact, no binary noise.
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def money(value: float | int) -> Decimal:
    return to_decimal(value).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def elapsed_seconds(pickup: str, dropoff: str) -> float:
    """Real elapsed time between two NYC wall-clock times, across DST changes.

    A dropoff in the repeated hour of the autumn change is taken as the second occurrence when the first
    one would put it before the pickup: a taxi meter does not run backwards. A dropoff equal to its pickup is a
    zero-length trip (ARCHITECTURE.md), not an hour-long one in the repeated hour.
    """
    start = datetime.fromisoformat(pickup).replace(tzinfo=NEW_YORK)
    end_local = datetime.fromisoformat(dropoff)
    elapsed = end_local.replace(tzinfo=NEW_YORK).timestamp() - start.timestamp()
    if elapsed < 0:
        later = end_local.replace(tzinfo=NEW_YORK, fold=1).timestamp() - start.timestamp()
        if later > 0:
            return later
    return elapsed


# What `duration_category` answers, shortest first (the order every view lists them in).
DURATION_CATEGORIES = ("short", "medium", "long")


def duration_category(seconds: float, thresholds: Thresholds) -> str:
    minutes = Decimal(repr(seconds)) / 60
    if minutes < thresholds.short_trip_minutes:
        return "short"
    if minutes < thresholds.long_trip_minutes:
        return "medium"
    return "long"


def profitability_tier(fare_per_mile: Decimal, thresholds: Thresholds) -> str:
    if fare_per_mile < thresholds.low_fare_per_mile:
        return "low"
    if fare_per_mile < thresholds.high_fare_per_mile:
        return "medium"
    return "high"


def _base(trip: CanonicalTrip, *names: str) -> Item:
    item: Item = {"trip_id": trip["trip_id"]}
    for name in names:
        value = trip.get(name)
        if value is None:
            continue
        item[name] = to_decimal(value) if isinstance(value, float | int) and not isinstance(value, bool) else value
    return item


def classify(trip: CanonicalTrip, thresholds: Thresholds) -> TripItems:
    return TripItems(
        high_value=high_value_item(trip, thresholds),
        duration=duration_item(trip, thresholds),
        fare_ratio=fare_ratio_item(trip, thresholds),
    )


def high_value_item(trip: CanonicalTrip, thresholds: Thresholds) -> Item | None:
    total = trip.get("total_amount")
    if total is None or money(total) <= thresholds.high_value_threshold:
        return None
    item = _base(
        trip,
        "pickup_datetime",
        "dropoff_datetime",
        "total_amount",
        "fare_amount",
        "tip_amount",
        "pickup_location_id",
        "dropoff_location_id",
        "pickup_longitude",
        "pickup_latitude",
        "passenger_count",
        "trip_distance",
        "payment_type",
        "service",
    )
    item["threshold"] = thresholds.high_value_threshold
    return item


def duration_item(trip: CanonicalTrip, thresholds: Thresholds) -> Item | None:
    seconds = elapsed_seconds(trip["pickup_datetime"], trip["dropoff_datetime"])
    if seconds <= 0 or seconds > float(thresholds.max_duration_hours) * 3600:
        return None
    # The money and distance too: `aggregates rebuild` recomputes zone_hourly_stats from these items.
    item = _base(
        trip,
        "pickup_datetime",
        "dropoff_datetime",
        "pickup_location_id",
        "dropoff_location_id",
        "service",
        "total_amount",
        "fare_amount",
        "tip_amount",
        "trip_distance",
    )
    item["duration_minutes"] = (Decimal(repr(seconds)) / 60).quantize(_CENT, rounding=ROUND_HALF_EVEN)
    item["duration_category"] = duration_category(seconds, thresholds)
    return item


def fare_ratio_item(trip: CanonicalTrip, thresholds: Thresholds) -> Item | None:
    distance, fare = trip.get("trip_distance"), trip.get("fare_amount")
    if distance is None or fare is None or distance <= 0 or fare <= 0:
        return None
    miles, dollars = money(distance), money(fare)
    if miles <= 0 or dollars <= 0:  # 0.004 from a record another producer wrote: 0.00 miles, no ratio
        return None
    per_mile = (dollars / miles).quantize(_CENT, rounding=ROUND_HALF_EVEN)
    item = _base(
        trip,
        "trip_distance",
        "fare_amount",
        "pickup_datetime",
        "pickup_location_id",
        "dropoff_location_id",
        "service",
        "total_amount",  # for `aggregates rebuild`, as in duration_item
        "tip_amount",
    )
    item["fare_per_mile"] = per_mile
    item["profitability_tier"] = profitability_tier(per_mile, thresholds)
    return item
