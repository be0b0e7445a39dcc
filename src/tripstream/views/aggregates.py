"""The real-time aggregates (`zone_hourly_stats`): reading its cells, and the per-zone and per-hour views.

One cell per (pickup zone, NYC local pickup hour) with Number sums (ARCHITECTURE.md, "Real-time aggregates").
The table is small (zones x hours), so it is read whole (`read_cells`: a parallel scan of the cells only; never
the per-trip tables). `build_aggregates` is pure: the same cells give the same views, used by `report` (console,
JSON, the HTML heatmap) and by `watch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from tripstream.aws.errors import is_not_found
from tripstream.settings import ZONE_HOURLY_STATS_TABLE
from tripstream.views.tables import DEFAULT_SEGMENTS, Item, parallel_scan
from tripstream.views.zones import ZoneLookup

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CATEGORIES = ("short", "medium", "long")
UNKNOWN_ZONE = "unknown"
DEFAULT_TOP_ZONES = 12
_CENT = Decimal("0.01")
_ZERO = Decimal(0)


class NoAggregatesTable(LookupError):
    """The aggregates table does not exist (a stack deployed before it): the message says what to do."""


@dataclass(frozen=True)
class Cell:
    """One item of zone_hourly_stats: `zone` is the id as text or "unknown", `hour` is `YYYY-MM-DDTHH`."""

    zone: str
    hour: str
    trips: int
    total_amount: Decimal
    high_value_trips: int
    short: int
    medium: int
    long: int

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Cell:
        def count(name: str) -> int:
            value = item.get(name)
            return int(value) if isinstance(value, Decimal | int) else 0

        amount = item.get("total_amount")
        return cls(
            zone=str(item["pickup_location_id"]),
            hour=str(item["pickup_hour"]),
            trips=count("trips"),
            total_amount=amount if isinstance(amount, Decimal) else _ZERO,
            high_value_trips=count("high_value_trips"),
            short=count("short"),
            medium=count("medium"),
            long=count("long"),
        )


def read_cells(dynamodb: DynamoDBClient, table: str = ZONE_HOURLY_STATS_TABLE, *, segments: int = 1) -> list[Cell]:
    """Every cell of the aggregates table (small: zones x hours); one segment by default. A missing table is
    `NoAggregatesTable`."""
    try:
        items: list[Item] = parallel_scan(dynamodb, table, segments=max(1, min(segments, DEFAULT_SEGMENTS)))
    except Exception as error:
        if is_not_found(error):
            raise NoAggregatesTable(
                f"the aggregates table {table} does not exist here: deploy the stack again (its template has it)"
            ) from error
        raise
    return [Cell.from_item(item) for item in items if "pickup_location_id" in item and "pickup_hour" in item]


# ------------------------------------------------------------------------------------------------ the views


def _cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_EVEN)


def _share(part: int, whole: int) -> Decimal:
    return (Decimal(part) / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN) if whole else _ZERO


def _hour_of_day(hour: str) -> int | None:
    try:
        value = int(hour[11:13])
    except (TypeError, ValueError):
        return None
    return value if 0 <= value < 24 else None


def _zone_id(zone: str) -> int | None:
    try:
        return int(zone)
    except ValueError:
        return None


@dataclass
class _Sum:
    trips: int = 0
    amount: Decimal = _ZERO
    high: int = 0

    def add(self, cell: Cell) -> None:
        self.trips += cell.trips
        self.amount += cell.total_amount
        self.high += cell.high_value_trips


def _zone_row(zone: str, total: _Sum, zones: ZoneLookup | None) -> dict[str, Any]:
    location = _zone_id(zone)
    found = zones.find(location) if zones is not None and location is not None else None
    return {
        "pickup_location_id": location,
        "pickup_borough": found.borough if found else None,
        "pickup_zone": found.zone if found else None,
        "trips": total.trips,
        "total_amount": _cents(total.amount),
        "high_value_trips": total.high,
        "high_value_share": _share(total.high, total.trips),
    }


def build_aggregates(
    cells: Iterable[Cell], *, zones: ZoneLookup | None = None, top_zones: int = DEFAULT_TOP_ZONES
) -> dict[str, Any]:
    """The per-zone and per-hour views of the cells, as plain data (Decimal amounts, int counts).

    - `by_pickup_hour`: every pickup hour present, ascending (`YYYY-MM-DDTHH`), trips and revenue.
    - `by_hour`: the same folded onto hours of day 0-23.
    - `by_pickup_zone`: the `top_zones` busiest zones by trips (ties by id), with names; "unknown" cells apart.
    - `heatmap`: those zones x hours of day 0-23, trips per cell.
    """
    cells = list(cells)
    total = _Sum()
    mix = dict.fromkeys(CATEGORIES, 0)
    hours: dict[str, _Sum] = {}
    hours_of_day = [_Sum() for _ in range(24)]
    by_zone: dict[str, _Sum] = {}
    zone_hours: dict[str, list[int]] = {}
    for cell in cells:
        total.add(cell)
        mix["short"] += cell.short
        mix["medium"] += cell.medium
        mix["long"] += cell.long
        hours.setdefault(cell.hour, _Sum()).add(cell)
        by_zone.setdefault(cell.zone, _Sum()).add(cell)
        hour = _hour_of_day(cell.hour)
        if hour is not None:
            hours_of_day[hour].add(cell)
            zone_hours.setdefault(cell.zone, [0] * 24)[hour] += cell.trips
    known = sorted(
        ((zone, s) for zone, s in by_zone.items() if _zone_id(zone) is not None),
        key=lambda entry: (-entry[1].trips, _zone_id(entry[0]) or 0),
    )
    busiest = known[:top_zones]
    other = known[top_zones:]
    unknown = sum((s.trips for zone, s in by_zone.items() if _zone_id(zone) is None), 0)
    categorised = sum(mix.values())
    return {
        "table": ZONE_HOURLY_STATS_TABLE,
        "cells": len(cells),
        "trips": total.trips,
        "total_amount": _cents(total.amount),
        "high_value_trips": total.high,
        "high_value_share": _share(total.high, total.trips),
        "first_hour": min(hours, default=None),
        "last_hour": max(hours, default=None),
        "duration_mix": [{"category": c, "trips": mix[c], "share": _share(mix[c], categorised)} for c in CATEGORIES],
        "by_pickup_hour": [
            {"hour": hour, "trips": s.trips, "total_amount": _cents(s.amount), "high_value_trips": s.high}
            for hour, s in sorted(hours.items())
        ],
        "by_hour": [
            {"hour": h, "trips": s.trips, "total_amount": _cents(s.amount), "high_value_trips": s.high}
            for h, s in enumerate(hours_of_day)
        ],
        "by_pickup_zone": [_zone_row(zone, s, zones) for zone, s in busiest],
        "other_zones": {"zones": len(other), "trips": sum(s.trips for _, s in other)},
        "unknown_zone_trips": unknown,
        "heatmap": {
            "hours": list(range(24)),
            "rows": [{**_zone_row(zone, s, zones), "by_hour": zone_hours.get(zone, [0] * 24)} for zone, s in busiest],
        },
    }
