"""The report: what the three analytics tables say, as plain data.

- Reading the tables is `tripstream.views.tables` (`read_tables` gives the `TableItems` built on here).
- Sections: `aggregates` (trips and revenue per pickup hour, busiest zones, high-value share, duration mix, the
  zone x hour heatmap) comes from the cells of `zone_hourly_stats` only (`tripstream.views.aggregates`); the
  others (`totals`, `duration`, `high_value`, `fare_per_mile`, `most_profitable`, `highest_value`) need per-trip
  values (percentiles, medians, top trips) and come from the three per-trip tables. `build_aggregate_report` is
  the aggregates alone (no per-trip scan at all).
- Computing: `build_report` turns the items into one plain dict (numbers are `Decimal`, lists and dicts of them);
  the statistics are small pure functions (`percentile`, `median`, `histogram`, ...), exactly defined below.
- Showing: `report_json` for `--json`, `tripstream.views.console` for a terminal, `tripstream.views.html` for a page.

Definitions (the tests recompute them from the input file):
- percentile p of n sorted values: linear interpolation between the closest ranks, at rank p/100 * (n - 1)
  (numpy's default, "type 7"); the median is percentile 50. Results are rounded half-even to 2 places.
- hour of day: the hour of `pickup_datetime`, NYC wall time as in the source.
- most profitable: the highest `fare_per_mile` among trips of at least `min_profitable_miles` (1 mile by default:
  below that the flag drop dominates and the per-mile figure says little); ties by pickup time, then trip id.
- highest value: the highest `total_amount`; ties likewise.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from tripstream.settings import PER_TRIP_TABLES
from tripstream.trips.analytics import DURATION_CATEGORIES
from tripstream.views.aggregates import Cell, build_aggregates
from tripstream.views.tables import FARE_RATIO_FIELDS, HIGH_VALUE_FIELDS, Item, TableItems
from tripstream.views.zones import ZoneLookup

Report = dict[str, Any]

REPORT_VERSION = 1
DEFAULT_TOP = 10
DEFAULT_TOP_ZONES = 12
MIN_PROFITABLE_MILES = Decimal("1.00")
PERCENTILES = (5, 10, 25, 50, 75, 90, 95, 99)
TIERS = ("low", "medium", "high")
# Histogram edges: 5-minute bins to an hour; $1-per-mile bins to $15. The last bin is open ("60+", "15+").
DURATION_EDGES = tuple(Decimal(m) for m in range(0, 65, 5))
FARE_PER_MILE_EDGES = tuple(Decimal(d) for d in range(16))
_CENT = Decimal("0.01")


# ------------------------------------------------------------------------------------------------ statistics


def cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_EVEN)


def percentile(sorted_values: Sequence[Decimal], p: int | Decimal) -> Decimal | None:
    """Percentile `p` (0-100) of values sorted ascending: linear interpolation at rank p/100*(n-1), in cents."""
    if not sorted_values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be between 0 and 100, not {p}")
    rank = Decimal(p) / 100 * (len(sorted_values) - 1)
    low = int(rank)  # rank >= 0: int() is floor
    fraction = rank - low
    value = sorted_values[low]
    if fraction and low + 1 < len(sorted_values):
        value = value + (sorted_values[low + 1] - value) * fraction
    return cents(value)


def median(values: Iterable[Decimal]) -> Decimal | None:
    return percentile(sorted(values), 50)


def mean(values: Sequence[Decimal]) -> Decimal | None:
    return cents(sum(values, Decimal(0)) / len(values)) if values else None


def histogram(values: Iterable[Decimal], edges: Sequence[Decimal]) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]), plus a last open bin [edges[-1], ...); values below edges[0] are
    counted in the first bin."""
    counts = [0] * len(edges)
    for value in values:
        index = len(edges) - 1
        for i in range(1, len(edges)):
            if value < edges[i]:
                index = i - 1
                break
        counts[index] += 1
    return counts


def share(part: int, whole: int) -> Decimal:
    """`part / whole` as a fraction with 4 places (0 when whole is 0)."""
    return (Decimal(part) / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN) if whole else Decimal(0)


def pickup_hour(pickup_datetime: str) -> int | None:
    """The hour of a canonical `YYYY-MM-DDTHH:MM:SS` timestamp."""
    try:
        return int(pickup_datetime[11:13])
    except (TypeError, ValueError):
        return None


def top(items: Iterable[Item], value: str, n: int) -> list[Item]:
    """The n items with the highest `value`; ties by pickup time, then trip id (stable across reads)."""
    ranked = [item for item in items if isinstance(item.get(value), Decimal)]
    ranked.sort(key=lambda item: (-item[value], str(item.get("pickup_datetime", "")), str(item["trip_id"])))
    return ranked[:n]


# ------------------------------------------------------------------------------------------------ the report


def _location(location_id: Any) -> int | None:
    if location_id is None:
        return None
    try:
        return int(location_id)
    except (TypeError, ValueError, ArithmeticError):
        return None


def _zone_fields(prefix: str, location_id: Any, zones: ZoneLookup | None) -> dict[str, Any]:
    location = _location(location_id)
    zone = zones.find(location) if zones is not None and location is not None else None
    return {
        f"{prefix}_location_id": location,
        f"{prefix}_borough": zone.borough if zone else None,
        f"{prefix}_zone": zone.zone if zone else None,
    }


def _trip_row(item: Item, fields: Sequence[str], zones: ZoneLookup | None) -> Item:
    row: Item = {"trip_id": item["trip_id"]}
    for name in fields:
        row[name] = item.get(name)
    row |= _zone_fields("pickup", item.get("pickup_location_id"), zones)
    row |= _zone_fields("dropoff", item.get("dropoff_location_id"), zones)
    return row


def _duration_section(items: Sequence[Item]) -> dict[str, Any]:
    minutes = sorted(item["duration_minutes"] for item in items if isinstance(item.get("duration_minutes"), Decimal))
    by_category: dict[str, list[Decimal]] = {category: [] for category in DURATION_CATEGORIES}
    for item in items:
        category = item.get("duration_category")
        if isinstance(item.get("duration_minutes"), Decimal) and category is not None:
            by_category.setdefault(str(category), []).append(item["duration_minutes"])
    return {
        "trips": len(items),
        "median_minutes": percentile(minutes, 50),
        "mean_minutes": mean(minutes),
        "categories": [
            {
                "category": category,
                "trips": len(values),
                "share": share(len(values), len(items)),
                "median_minutes": median(values),
            }
            for category, values in by_category.items()
        ],
        "histogram": _bins(histogram(minutes, DURATION_EDGES), DURATION_EDGES),
    }


def _bins(counts: Sequence[int], edges: Sequence[Decimal]) -> list[dict[str, Any]]:
    return [
        {"from": edges[i], "to": edges[i + 1] if i + 1 < len(edges) else None, "trips": count}
        for i, count in enumerate(counts)
    ]


def _high_value_section(items: Sequence[Item], zones: ZoneLookup | None, top_zones: int) -> dict[str, Any]:
    totals = sorted(item["total_amount"] for item in items if isinstance(item.get("total_amount"), Decimal))
    thresholds = Counter(str(item["threshold"]) for item in items if item.get("threshold") is not None)
    by_hour = [0] * 24
    for item in items:
        hour = pickup_hour(str(item.get("pickup_datetime", "")))
        if hour is not None and 0 <= hour < 24:
            by_hour[hour] += 1
    zone_trips: Counter[int | None] = Counter()
    zone_amounts: dict[int | None, Decimal] = {}
    boroughs: Counter[str] = Counter()
    for item in items:
        location = _location(item.get("pickup_location_id"))
        zone_trips[location] += 1
        amount = item.get("total_amount")
        zone_amounts[location] = zone_amounts.get(location, Decimal(0)) + (
            amount if isinstance(amount, Decimal) else Decimal(0)
        )
        zone = zones.find(location) if zones is not None and location is not None else None
        boroughs[zone.borough if zone else "Unknown"] += 1
    known = sorted(
        ((location, count) for location, count in zone_trips.items() if location is not None),
        key=lambda entry: (-entry[1], entry[0] if entry[0] is not None else -1),
    )
    rows = [
        {
            **_zone_fields("pickup", location, zones),
            "trips": count,
            "total_amount": cents(zone_amounts[location]),
        }
        for location, count in known[:top_zones]
    ]
    other = known[top_zones:]
    return {
        "trips": len(items),
        "threshold": Decimal(thresholds.most_common(1)[0][0]) if thresholds else None,
        "total_amount": cents(sum(totals, Decimal(0))),
        "median_total_amount": percentile(totals, 50),
        "by_hour": by_hour,
        "by_pickup_zone": rows,
        "other_zones": {"zones": len(other), "trips": sum(count for _, count in other)},
        "unknown_zone_trips": zone_trips.get(None, 0),
        "by_borough": (
            [{"borough": borough, "trips": count} for borough, count in sorted(boroughs.items(), key=_by_count)]
            if zones is not None
            else []
        ),
    }


def _by_count(entry: tuple[str, int]) -> tuple[int, str]:
    return (-entry[1], entry[0])


def _fare_section(items: Sequence[Item]) -> dict[str, Any]:
    ratios = sorted(item["fare_per_mile"] for item in items if isinstance(item.get("fare_per_mile"), Decimal))
    tiers = Counter(str(item.get("profitability_tier")) for item in items)
    return {
        "trips": len(items),
        "min": ratios[0] if ratios else None,
        "max": ratios[-1] if ratios else None,
        "mean": mean(ratios),
        "percentiles": {f"p{p}": percentile(ratios, p) for p in PERCENTILES},
        "tiers": [
            {"tier": tier, "trips": tiers.get(tier, 0), "share": share(tiers.get(tier, 0), len(items))}
            for tier in TIERS
        ],
        "histogram": _bins(histogram(ratios, FARE_PER_MILE_EDGES), FARE_PER_MILE_EDGES),
    }


def build_report(
    items: TableItems,
    *,
    zones: ZoneLookup | None = None,
    top_n: int = DEFAULT_TOP,
    top_zones: int = DEFAULT_TOP_ZONES,
    min_profitable_miles: Decimal = MIN_PROFITABLE_MILES,
    tables: Mapping[str, str] | None = None,
    source: str | None = None,
    generated_at: datetime | None = None,
    cells: Sequence[Cell] | None = None,
) -> Report:
    """The whole report as plain data (pure: the same items give the same report); with `cells`, the aggregates
    section too."""
    trip_ids = {item["trip_id"] for table in (items.high_value, items.duration, items.fare_ratio) for item in table}
    profitable = top(
        (
            item
            for item in items.fare_ratio
            if isinstance(item.get("trip_distance"), Decimal) and item["trip_distance"] >= min_profitable_miles
        ),
        "fare_per_mile",
        top_n,
    )
    valuable = top(items.high_value, "total_amount", top_n)
    return {
        "report_version": REPORT_VERSION,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "source": source,
        "tables": dict(tables or {name: name for name in PER_TRIP_TABLES}),
        "zones": zones.source if zones is not None else None,
        "aggregates": build_aggregates(cells, zones=zones, top_zones=top_zones) if cells is not None else None,
        "totals": {
            "trips": len(trip_ids),
            "items": items.counts(),
            "high_value_amount": cents(
                sum(
                    (i["total_amount"] for i in items.high_value if isinstance(i.get("total_amount"), Decimal)),
                    Decimal(0),
                )
            ),
        },
        "duration": _duration_section(items.duration),
        "high_value": _high_value_section(items.high_value, zones, top_zones),
        "fare_per_mile": _fare_section(items.fare_ratio),
        "most_profitable": {
            "min_distance_miles": min_profitable_miles,
            "trips": [_trip_row(item, FARE_RATIO_FIELDS, zones) for item in profitable],
        },
        "highest_value": {"trips": [_trip_row(item, HIGH_VALUE_FIELDS, zones) for item in valuable]},
    }


def build_aggregate_report(
    cells: Sequence[Cell],
    *,
    zones: ZoneLookup | None = None,
    top_zones: int = DEFAULT_TOP_ZONES,
    table: str | None = None,
    source: str | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """The report of the aggregates alone: the per-trip sections are absent (nothing of them was read)."""
    aggregates = build_aggregates(cells, zones=zones, top_zones=top_zones)
    if table is not None:
        aggregates["table"] = table
    return {
        "report_version": REPORT_VERSION,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "source": source,
        "tables": {"zone_hourly_stats": aggregates["table"]},
        "zones": zones.source if zones is not None else None,
        "aggregates": aggregates,
    }


# ------------------------------------------------------------------------------------------------ JSON


def jsonable(value: Any) -> Any:
    """Decimals as JSON numbers: integers as ints, others as floats (their shortest repr is the decimal text)."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and value.as_tuple().exponent >= 0:  # type: ignore[operator]
            return int(value)
        as_float = float(value)
        if math.isfinite(as_float) and Decimal(repr(as_float)) == value:
            return as_float
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def report_json(report: Report) -> str:
    return orjson.dumps(jsonable(report), option=orjson.OPT_INDENT_2).decode()
