"""The real-time aggregates (`zone_hourly_stats`): reading its cells, and the per-zone and per-hour views.

One cell per (pickup zone, NYC local pickup hour) with Number sums (ARCHITECTURE.md, "Real-time aggregates").
The table is small (zones x hours), so it is read whole (`read_cells`: a parallel scan of the cells only; never
the per-trip tables). `build_aggregates` is pure: the same cells give the same views, used by `report` (console,
JSON, the HTML heatmap) and by `watch`.

The time window (`pickup_window`): real months carry pickups years away from the file's month (2088, 2009), so
the views never take their hour range from the smallest or largest hour present. The hours present are split into
runs where no gap between consecutive hours exceeds `WINDOW_GAP_HOURS` (a week); a run holding at least
`STRAY_SHARE` of all trips belongs to the window (when none does, the run with the most trips, ties to the later);
the window runs from the first hour of the first such run to the last hour of the last. Trips outside it are
stray-dated: still in every total, shown apart (`strays`: count, revenue, their hours), never in the time views.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from tripstream.aws.errors import is_not_found
from tripstream.settings import ZONE_HOURLY_STATS_TABLE
from tripstream.trips.analytics import DURATION_CATEGORIES
from tripstream.views.tables import DEFAULT_SEGMENTS, Item, parallel_scan
from tripstream.views.zones import ZoneLookup

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

UNKNOWN_ZONE = "unknown"
DEFAULT_TOP_ZONES = 12
WINDOW_GAP_HOURS = 7 * 24  # a gap longer than this between hours with trips separates two runs
STRAY_SHARE = Decimal("0.01")  # a run with less than this share of all trips is stray-dated (unless it is the busiest)
WINDOW_RULE = (
    f"pickup hours in runs without a gap over {WINDOW_GAP_HOURS // 24} days that hold {STRAY_SHARE * 100:.0f}% of"
    " the trips or more"
)
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
    refunds: int = 0  # trips with a negative total_amount (cells written before these counters: 0)
    refund_amount: Decimal = _ZERO  # the sum of those negative totals (<= 0), already inside total_amount

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Cell:
        def count(name: str) -> int:
            value = item.get(name)
            return int(value) if isinstance(value, Decimal | int) else 0

        def amount_of(name: str) -> Decimal:
            value = item.get(name)
            return value if isinstance(value, Decimal) else _ZERO

        return cls(
            zone=str(item["pickup_location_id"]),
            hour=str(item["pickup_hour"]),
            trips=count("trips"),
            total_amount=amount_of("total_amount"),
            high_value_trips=count("high_value_trips"),
            short=count("short"),
            medium=count("medium"),
            long=count("long"),
            refunds=count("refunds"),
            refund_amount=amount_of("refund_amount"),
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
        """Add a cell's trips, net revenue and high-value trips."""
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


def _hour_index(hour: str) -> int | None:
    """Hours since 0001-01-01T00 of a `YYYY-MM-DDTHH` pickup hour; None when it is not one."""
    try:
        moment = datetime.strptime(hour, "%Y-%m-%dT%H")
    except ValueError:
        return None
    return moment.toordinal() * 24 + moment.hour


def pickup_window(trips_by_hour: Mapping[str, int]) -> tuple[str, str] | None:
    """The first and last pickup hour of the window (see the module's docstring) of these hours and their trip
    counts; None without trips. Hours that are not `YYYY-MM-DDTHH` are never in it."""
    placed = sorted(
        (index, hour, trips)
        for hour, trips in trips_by_hour.items()
        if trips > 0 and (index := _hour_index(hour)) is not None
    )
    runs: list[list[tuple[int, str, int]]] = []
    for entry in placed:
        if runs and entry[0] - runs[-1][-1][0] <= WINDOW_GAP_HOURS:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    if not runs:
        return None
    everything = sum(trips for _, _, trips in placed)
    sizes = [sum(trips for _, _, trips in run) for run in runs]
    kept = [i for i, size in enumerate(sizes) if size >= STRAY_SHARE * everything]
    if not kept:
        kept = [max(range(len(runs)), key=lambda i: (sizes[i], i))]
    return runs[kept[0]][0][1], runs[kept[-1]][-1][1]


def build_aggregates(
    cells: Iterable[Cell], *, zones: ZoneLookup | None = None, top_zones: int = DEFAULT_TOP_ZONES
) -> dict[str, Any]:
    """The per-zone and per-hour views of the cells, as plain data (Decimal amounts, int counts).

    - totals (`trips`, `total_amount`: net of refunds, `high_value_*`, `duration_mix`, `refunds`) and the zones
      (`by_pickup_zone`, `other_zones`, `unknown_zone_trips`) are over every cell;
    - `window`: the pickup hours where the trips are (`pickup_window`), with its trips and revenue; `first_hour` /
      `last_hour` are its ends. The time views are over the window's cells only: `by_pickup_hour` (every pickup
      hour present, ascending, `YYYY-MM-DDTHH`), `by_hour` (folded onto hours of day 0-23), and `heatmap` (the
      `top_zones` busiest zones x hours of day, trips per cell);
    - `strays`: the trips dated outside the window (count, revenue, and their hours ascending);
    - `refunds`: trips with a negative `total_amount`, their count and the sum of those totals (inside
      `total_amount`, which is net).
    """
    cells = list(cells)
    hour_trips: dict[str, int] = {}
    for cell in cells:
        hour_trips[cell.hour] = hour_trips.get(cell.hour, 0) + cell.trips
    window = pickup_window(hour_trips)
    total, inside, refunds = _Sum(), _Sum(), _Sum()
    mix = dict.fromkeys(DURATION_CATEGORIES, 0)
    hours: dict[str, _Sum] = {}
    strays: dict[str, _Sum] = {}
    hours_of_day = [_Sum() for _ in range(24)]
    by_zone: dict[str, _Sum] = {}
    zone_hours: dict[str, list[int]] = {}
    for cell in cells:
        total.add(cell)
        refunds.trips += cell.refunds
        refunds.amount += cell.refund_amount
        mix["short"] += cell.short
        mix["medium"] += cell.medium
        mix["long"] += cell.long
        by_zone.setdefault(cell.zone, _Sum()).add(cell)
        if window is None or not (_hour_index(cell.hour) is not None and window[0] <= cell.hour <= window[1]):
            strays.setdefault(cell.hour, _Sum()).add(cell)
            continue
        inside.add(cell)
        hours.setdefault(cell.hour, _Sum()).add(cell)
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
        "first_hour": window[0] if window else None,
        "last_hour": window[1] if window else None,
        "window": {
            "first_hour": window[0] if window else None,
            "last_hour": window[1] if window else None,
            "trips": inside.trips,
            "total_amount": _cents(inside.amount),
            "rule": WINDOW_RULE,
        },
        "strays": {
            "trips": sum(s.trips for s in strays.values()),
            "total_amount": _cents(sum((s.amount for s in strays.values()), _ZERO)),
            "hours": [
                {"hour": hour, "trips": s.trips, "total_amount": _cents(s.amount)} for hour, s in sorted(strays.items())
            ],
        },
        "refunds": {"trips": refunds.trips, "total_amount": _cents(refunds.amount)},
        "duration_mix": [
            {"category": c, "trips": mix[c], "share": _share(mix[c], categorised)} for c in DURATION_CATEGORIES
        ],
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
