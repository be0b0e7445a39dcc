"""Accepted trips -> what they add to `zone_hourly_stats` (ARCHITECTURE.md, "Real-time aggregates"). Pure.

A trip's cell is its pickup zone (text, or "unknown") and the NYC local hour of its pickup; its increments are
what it adds to that cell. Sums over many trips are exact (`Decimal`), so the order trips are added in never
matters: a cell is the same whether its trips came in one batch or a hundred.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tripstream.trips.analytics import TripItems, money
from tripstream.trips.normalise import CanonicalTrip

UNKNOWN_ZONE = "unknown"
# Added to every cell (0 when no trip of the batch has it), so a reader always finds them.
CORE_COUNTERS = ("trips", "total_amount", "high_value_trips", "short", "medium", "long")
# Added when at least one trip of the batch has the value. `refunds` / `refund_amount`: trips whose
# `total_amount` is negative (a refund or a correction, as real TLC months carry), their count and the sum of those
# negative totals; `total_amount` stays the net sum, so gross = total_amount - refund_amount.
EXTRA_SUMS = ("fare_amount", "tip_amount", "trip_distance", "duration_minutes", "refunds", "refund_amount")
COUNTERS = CORE_COUNTERS + EXTRA_SUMS
Cell = tuple[str, str]  # (pickup_location_id, pickup_hour)
_ZERO = Decimal(0)
_ONE = Decimal(1)


@dataclass(frozen=True)
class Contribution:
    """What one trip adds to one cell."""

    trip_id: str
    cell: Cell
    increments: Mapping[str, Decimal]


def zone_of(value: Any) -> str:
    """The partition key: the TLC zone id as text ("132"), or "unknown" (coordinate eras, missing id)."""
    if value is None or isinstance(value, bool):
        return UNKNOWN_ZONE
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else value
    return str(value)


def pickup_hour(pickup_datetime: str) -> str:
    """`YYYY-MM-DDTHH` of a canonical (NYC local) pickup time `YYYY-MM-DDTHH:MM:SS`."""
    hour = pickup_datetime[:13]
    if len(hour) != 13 or hour[10] != "T":
        raise ValueError(f"not a canonical pickup time: {pickup_datetime!r}")
    return hour


def _money_increments(value_of: Callable[[str], Any]) -> dict[str, Decimal]:
    """One trip's core counters (`trips` 1, the rest 0), its money sums where it has them, and `refunds` /
    `refund_amount` when its `total_amount` is negative."""
    increments = {**dict.fromkeys(CORE_COUNTERS, _ZERO), "trips": _ONE}
    for name in ("total_amount", "fare_amount", "tip_amount", "trip_distance"):
        value = value_of(name)
        if value is not None:
            increments[name] = money(value)
    if increments["total_amount"] < 0:
        increments["refunds"] = _ONE
        increments["refund_amount"] = increments["total_amount"]
    return increments


def contribution(trip: CanonicalTrip, items: TripItems) -> Contribution:
    """The cell and increments of an accepted trip, given what it wrote to the three tables."""
    increments = _money_increments(trip.get)
    if items.high_value is not None:
        increments["high_value_trips"] = _ONE
    if items.duration is not None:
        increments[str(items.duration["duration_category"])] = _ONE
        increments["duration_minutes"] = Decimal(items.duration["duration_minutes"])
    cell = (zone_of(trip.get("pickup_location_id")), pickup_hour(trip["pickup_datetime"]))
    return Contribution(trip["trip_id"], cell, increments)


def by_cell(contributions: Iterable[Contribution]) -> dict[Cell, list[Contribution]]:
    """Group by cell, each trip_id once (the first seen: the same trip_id is the same trip, so the same values)."""
    seen: set[str] = set()
    cells: dict[Cell, list[Contribution]] = {}
    for item in contributions:
        if item.trip_id in seen:
            continue
        seen.add(item.trip_id)
        cells.setdefault(item.cell, []).append(item)
    return cells


def summed(contributions: Iterable[Contribution]) -> dict[str, Decimal]:
    """The increments of several trips of one cell, added up: the core counters always, the extra sums when
    any trip has them."""
    totals = dict.fromkeys(CORE_COUNTERS, _ZERO)
    for item in contributions:
        for name, value in item.increments.items():
            totals[name] = totals.get(name, _ZERO) + value
    return totals


def contribution_from_items(
    high_value: Mapping[str, Any] | None, duration: Mapping[str, Any] | None, fare_ratio: Mapping[str, Any] | None
) -> Contribution:
    """A trip's contribution recomputed from its items in the three tables (`aggregates rebuild`). The same as
    :func:`contribution` for a trip written by this version; a trip in none of the tables cannot be recovered,
    and items written before the money was copied into every table lack the sums they do not hold."""
    items = [item for item in (high_value, duration, fare_ratio) if item is not None]
    if not items:
        raise ValueError("a trip in none of the three tables has nothing to recompute from")

    def first(name: str) -> Any:
        return next((item[name] for item in items if item.get(name) is not None), None)

    increments = _money_increments(first)
    if high_value is not None:
        increments["high_value_trips"] = _ONE
    if duration is not None:
        increments[str(duration["duration_category"])] = _ONE
        increments["duration_minutes"] = Decimal(duration["duration_minutes"])
    cell = (zone_of(first("pickup_location_id")), pickup_hour(str(first("pickup_datetime"))))
    return Contribution(str(first("trip_id")), cell, increments)
