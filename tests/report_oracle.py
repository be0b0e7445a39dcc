"""The report's numbers, computed straight from a TLC trips file with csv, decimal and statistics only.

Independent of tripstream: it re-reads the file and re-applies the rules of ARCHITECTURE.md ("Analytics") and the
report's definitions (tripstream.views.report docstring), so that the tests compare two separate computations.
Handles the eras the tests use: the `tpep_*` / `PULocationID` files (2016/07 on).
"""

from __future__ import annotations

import csv
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
CENT = Decimal("0.01")
REPO_ROOT = Path(__file__).resolve().parents[1]
TLC_DIR = Path(os.environ.get("TRIPSTREAM_TLC_DIR") or REPO_ROOT.parent / "shared" / "data" / "tlc")
SAMPLE_2019 = TLC_DIR / "yellow_2019-01_sample.csv"
# TLC's zone lookup (public data), shipped with the tests: the same file as ../shared/data/tlc's.
ZONES_CSV = REPO_ROOT / "tests" / "fixtures" / "taxi_zone_lookup.csv"


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def _money(text: str) -> Decimal | None:
    text = text.strip()
    return cents(Decimal(text)) if text else None


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text else None


@dataclass
class Trip:
    """One distinct row of the file, with what each table would hold for it (None: not in that table)."""

    key: tuple[str, ...]
    pickup: str  # canonical YYYY-MM-DDTHH:MM:SS
    dropoff: str
    distance: Decimal | None
    fare: Decimal | None
    tip: Decimal | None
    total: Decimal | None
    pickup_location: int | None
    dropoff_location: int | None
    high_value: bool = False
    duration_minutes: Decimal | None = None
    duration_category: str | None = None
    fare_per_mile: Decimal | None = None
    tier: str | None = None


@dataclass
class Expected:
    trips: list[Trip]
    zones: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def high_value(self) -> list[Trip]:
        return [t for t in self.trips if t.high_value]

    @property
    def timed(self) -> list[Trip]:
        return [t for t in self.trips if t.duration_minutes is not None]

    @property
    def fares(self) -> list[Trip]:
        return [t for t in self.trips if t.fare_per_mile is not None]

    @property
    def in_any_table(self) -> int:
        return sum(
            1 for t in self.trips if t.high_value or t.duration_minutes is not None or t.fare_per_mile is not None
        )


def read_trips(path: Path, limit: int | None = None) -> Expected:
    """Every distinct data row of `path` (the first `limit` rows), classified by the three rules."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader)]
        column = {name: index for index, name in enumerate(header)}
        seen: set[tuple[str, ...]] = set()
        trips: list[Trip] = []
        for number, row in enumerate(reader, start=1):
            if limit is not None and number > limit:
                break
            if not any(cell.strip() for cell in row):
                continue
            key = tuple(cell.strip() for cell in row[: len(header)])
            if key in seen:  # two identical rows are the same trip
                continue
            seen.add(key)

            def get(name: str, row: list[str] = row) -> str:
                return row[column[name]]

            pickup = datetime.strptime(get("tpep_pickup_datetime").strip(), "%Y-%m-%d %H:%M:%S")
            dropoff = datetime.strptime(get("tpep_dropoff_datetime").strip(), "%Y-%m-%d %H:%M:%S")
            trip = Trip(
                key=key,
                pickup=pickup.isoformat(),
                dropoff=dropoff.isoformat(),
                distance=_money(get("trip_distance")),
                fare=_money(get("fare_amount")),
                tip=_money(get("tip_amount")),
                total=_money(get("total_amount")),
                pickup_location=_int(get("pulocationid")),
                dropoff_location=_int(get("dolocationid")),
            )
            trip.high_value = trip.total is not None and trip.total > Decimal("50.00")
            seconds = dropoff.replace(tzinfo=NEW_YORK).timestamp() - pickup.replace(tzinfo=NEW_YORK).timestamp()
            if 0 < seconds <= 24 * 3600:
                minutes = Decimal(int(seconds)) / 60
                trip.duration_minutes = cents(minutes)
                trip.duration_category = "short" if minutes < 10 else "medium" if minutes < 30 else "long"
            if trip.distance and trip.fare and trip.distance > 0 and trip.fare > 0:
                trip.fare_per_mile = cents(trip.fare / trip.distance)
                trip.tier = "low" if trip.fare_per_mile < 3 else "medium" if trip.fare_per_mile < 6 else "high"
            trips.append(trip)
    return Expected(trips=trips)


def read_zones(path: Path = ZONES_CSV) -> dict[int, tuple[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return {int(row["LocationID"]): (row["Borough"], row["Zone"]) for row in csv.DictReader(handle)}


def percentile(values: list[Decimal], p: int) -> Decimal:
    """Via the standard library: statistics.quantiles(method="inclusive") is the same linear interpolation."""
    if len(values) == 1:
        return cents(values[0])
    if p == 0:
        return cents(min(values))
    if p == 100:
        return cents(max(values))
    return cents(statistics.quantiles(values, n=100, method="inclusive")[p - 1])


def median(values: list[Decimal]) -> Decimal:
    return cents(statistics.median(values))


def expected_numbers(expected: Expected, *, top_zones: int = 12, top_n: int = 10) -> dict[str, Any]:
    """The figures the report must show for these trips."""
    timed, high, fares = expected.timed, expected.high_value, expected.fares
    minutes = [t.duration_minutes for t in timed if t.duration_minutes is not None]
    categories = {
        category: [t.duration_minutes for t in timed if t.duration_category == category and t.duration_minutes]
        for category in ("short", "medium", "long")
    }
    ratios = [t.fare_per_mile for t in fares if t.fare_per_mile is not None]
    hours = Counter(int(t.pickup[11:13]) for t in high)
    zone_counts = Counter(t.pickup_location for t in high if t.pickup_location is not None)
    top_zone_list = sorted(zone_counts.items(), key=lambda entry: (-entry[1], entry[0]))[:top_zones]
    profitable = sorted(
        (t for t in fares if t.distance is not None and t.distance >= Decimal("1.00")),
        key=lambda t: (-(t.fare_per_mile or 0), t.pickup),
    )[:top_n]
    valuable = sorted(high, key=lambda t: (-(t.total or 0), t.pickup))[:top_n]
    return {
        "trips": expected.in_any_table,
        "items": {
            "high_value_trips": len(high),
            "trip_duration_analysis": len(timed),
            "distance_to_fare_ratio": len(fares),
        },
        "high_value_amount": cents(sum((t.total for t in high if t.total is not None), Decimal(0))),
        "median_minutes": median(minutes),
        "categories": {c: (len(v), median(v) if v else None) for c, v in categories.items()},
        "by_hour": [hours.get(hour, 0) for hour in range(24)],
        "top_zones": top_zone_list,
        "percentiles": {f"p{p}": percentile(ratios, p) for p in (5, 10, 25, 50, 75, 90, 95, 99)},
        "fare_min": min(ratios),
        "fare_max": max(ratios),
        "tiers": dict(Counter(t.tier for t in fares)),
        "most_profitable": [(t.fare_per_mile, t.pickup) for t in profitable],
        "highest_value": [(t.total, t.pickup) for t in valuable],
    }


def table_items(expected: Expected) -> dict[str, list[dict[str, Any]]]:
    """What the three tables would hold (as DynamoDB returns it: Decimal numbers), with made-up trip ids."""
    high, duration, fare = [], [], []
    for index, t in enumerate(expected.trips):
        base = {"trip_id": f"trip-{index:06d}", "pickup_datetime": t.pickup}
        locations = {
            name: Decimal(value)
            for name, value in (("pickup_location_id", t.pickup_location), ("dropoff_location_id", t.dropoff_location))
            if value is not None
        }
        if t.high_value:
            high.append(
                base
                | locations
                | {
                    "dropoff_datetime": t.dropoff,
                    "total_amount": t.total,
                    "fare_amount": t.fare,
                    "tip_amount": t.tip,
                    "trip_distance": t.distance,
                    "threshold": Decimal("50.00"),
                }
            )
        if t.duration_minutes is not None:
            duration.append(
                base
                | locations
                | {
                    "dropoff_datetime": t.dropoff,
                    "duration_minutes": t.duration_minutes,
                    "duration_category": t.duration_category,
                }
            )
        if t.fare_per_mile is not None:
            fare.append(
                base
                | locations
                | {
                    "trip_distance": t.distance,
                    "fare_amount": t.fare,
                    "fare_per_mile": t.fare_per_mile,
                    "profitability_tier": t.tier,
                }
            )
    return {"high_value": high, "duration": duration, "fare_ratio": fare}


def check_report(report: dict[str, Any], numbers: dict[str, Any], zones: dict[int, tuple[str, str]] | None) -> None:
    """Assert that `report` (tripstream.views.report.build_report's data) shows `numbers`."""
    assert report["totals"]["trips"] == numbers["trips"]
    assert report["totals"]["items"] == numbers["items"]
    assert report["totals"]["high_value_amount"] == numbers["high_value_amount"]
    duration = report["duration"]
    assert duration["median_minutes"] == numbers["median_minutes"]
    assert {c["category"]: (c["trips"], c["median_minutes"]) for c in duration["categories"]} == numbers["categories"]
    assert sum(b["trips"] for b in duration["histogram"]) == numbers["items"]["trip_duration_analysis"]
    high = report["high_value"]
    assert high["by_hour"] == numbers["by_hour"]
    assert [(z["pickup_location_id"], z["trips"]) for z in high["by_pickup_zone"]] == numbers["top_zones"]
    if zones is not None:
        for row in high["by_pickup_zone"]:
            assert (row["pickup_borough"], row["pickup_zone"]) == zones[row["pickup_location_id"]]
    fares = report["fare_per_mile"]
    assert fares["percentiles"] == numbers["percentiles"]
    assert (fares["min"], fares["max"]) == (numbers["fare_min"], numbers["fare_max"])
    assert {t["tier"]: t["trips"] for t in fares["tiers"] if t["trips"]} == numbers["tiers"]
    assert sum(b["trips"] for b in fares["histogram"]) == numbers["items"]["distance_to_fare_ratio"]
    assert [(t["fare_per_mile"], t["pickup_datetime"]) for t in report["most_profitable"]["trips"]] == numbers[
        "most_profitable"
    ]
    assert [(t["total_amount"], t["pickup_datetime"]) for t in report["highest_value"]["trips"]] == numbers[
        "highest_value"
    ]


# ------------------------------------------------------------------------------------------------ the aggregates


def expected_cells(expected: Expected) -> dict[tuple[str, str], dict[str, Decimal]]:
    """zone_hourly_stats as ARCHITECTURE.md defines it, for these trips: (zone id text or "unknown", NYC local
    `YYYY-MM-DDTHH`) -> Number attributes. Every distinct trip counts once."""
    cells: dict[tuple[str, str], dict[str, Decimal]] = {}
    for t in expected.trips:
        key = (str(t.pickup_location) if t.pickup_location is not None else "unknown", t.pickup[:13])
        cell = cells.setdefault(
            key, {name: Decimal(0) for name in ("trips", "total_amount", "high_value_trips", "short", "medium", "long")}
        )
        cell["trips"] += 1
        cell["total_amount"] += t.total if t.total is not None else Decimal(0)
        cell["high_value_trips"] += 1 if t.high_value else 0
        if t.total is not None and t.total < 0:  # a refund: counted apart too (the cell's extra sums)
            cell["refunds"] = cell.get("refunds", Decimal(0)) + 1
            cell["refund_amount"] = cell.get("refund_amount", Decimal(0)) + t.total
        if t.duration_category is not None:
            cell[t.duration_category] += 1
    return cells


def cell_items(cells: dict[tuple[str, str], dict[str, Decimal]]) -> list[dict[str, Any]]:
    """The cells as items read back from DynamoDB (plain values, Decimal numbers)."""
    return [{"pickup_location_id": zone, "pickup_hour": hour, **values} for (zone, hour), values in cells.items()]


def window_of(pickups: list[datetime]) -> tuple[datetime, datetime] | None:
    """The views' time window (tripstream.views.aggregates docstring), recomputed from the pickup times: the hours
    are cut into runs wherever two consecutive hours with trips are more than 7 days apart; the runs holding 1% of
    the trips or more (if none, the run with the most, the later on a tie) bound it; returns its first and last
    hour (their starts)."""
    if not pickups:
        return None
    per_hour = Counter(p.replace(minute=0, second=0, microsecond=0) for p in pickups)
    runs: list[tuple[datetime, datetime, int]] = []  # first hour, last hour, trips
    for hour in sorted(per_hour):
        if runs and hour - runs[-1][1] <= timedelta(days=7):
            first, _, trips = runs.pop()
            runs.append((first, hour, trips + per_hour[hour]))
        else:
            runs.append((hour, hour, per_hour[hour]))
    big = [run for run in runs if run[2] * 100 >= len(pickups)]
    if not big:
        most = max(run[2] for run in runs)
        big = [[run for run in runs if run[2] == most][-1]]
    return big[0][0], big[-1][1]


def expected_aggregates(expected: Expected, *, top_zones: int = 12) -> dict[str, Any]:
    """The aggregates' views, straight from the trips (not from the cells): totals and zones over every trip, the
    time views over the trips inside the window, the others shown as stray-dated; refunds apart."""
    everything = expected.trips
    high = sum(1 for t in everything if t.high_value)
    by_zone = Counter(t.pickup_location for t in everything if t.pickup_location is not None)
    busiest = sorted(by_zone.items(), key=lambda entry: (-entry[1], entry[0]))[:top_zones]
    window = window_of([datetime.fromisoformat(t.pickup) for t in everything])
    inside = [bool(window) and window[0] <= datetime.fromisoformat(t.pickup[:13]) <= window[1] for t in everything]
    trips = [t for t, placed in zip(everything, inside, strict=True) if placed]
    strays = [t for t, placed in zip(everything, inside, strict=True) if not placed]
    refunds = [t for t in everything if t.total is not None and t.total < 0]
    heat = {
        zone: [sum(1 for t in trips if t.pickup_location == zone and int(t.pickup[11:13]) == h) for h in range(24)]
        for zone, _ in busiest
    }
    hours = sorted({t.pickup[:13] for t in trips})

    def amount(group: list[Trip]) -> Decimal:
        return cents(sum((t.total for t in group if t.total is not None), Decimal(0)))

    return {
        "trips": len(everything),
        "total_amount": amount(everything),
        "high_value_trips": high,
        "high_value_share": (Decimal(high) / len(everything)).quantize(Decimal("0.0001")) if everything else Decimal(0),
        "window": (window[0].strftime("%Y-%m-%dT%H"), window[1].strftime("%Y-%m-%dT%H")) if window else None,
        "window_trips": (len(trips), amount(trips)),
        "strays": (len(strays), amount(strays)),
        "stray_hours": sorted(Counter(t.pickup[:13] for t in strays).items()),
        "refunds": (len(refunds), amount(refunds)),
        "by_hour": [sum(1 for t in trips if int(t.pickup[11:13]) == h) for h in range(24)],
        "by_pickup_hour": [(hour, sum(1 for t in trips if t.pickup[:13] == hour)) for hour in hours],
        "busiest": busiest,
        "heatmap": heat,
        "mix": {c: sum(1 for t in everything if t.duration_category == c) for c in ("short", "medium", "long")},
        "unknown": sum(1 for t in everything if t.pickup_location is None),
    }


def check_aggregates(
    view: dict[str, Any], numbers: dict[str, Any], zones: dict[int, tuple[str, str]] | None = None
) -> None:
    """Assert that the aggregates section (tripstream.views.aggregates.build_aggregates) shows `numbers`."""
    assert view["trips"] == numbers["trips"]
    assert view["total_amount"] == numbers["total_amount"]
    assert view["high_value_trips"] == numbers["high_value_trips"]
    assert view["high_value_share"] == numbers["high_value_share"]
    assert [h["trips"] for h in view["by_hour"]] == numbers["by_hour"]
    assert [(h["hour"], h["trips"]) for h in view["by_pickup_hour"]] == numbers["by_pickup_hour"]
    assert [(z["pickup_location_id"], z["trips"]) for z in view["by_pickup_zone"]] == numbers["busiest"]
    assert {r["pickup_location_id"]: r["by_hour"] for r in view["heatmap"]["rows"]} == numbers["heatmap"]
    assert {c["category"]: c["trips"] for c in view["duration_mix"]} == numbers["mix"]
    assert view["unknown_zone_trips"] == numbers["unknown"]
    assert (view["first_hour"], view["last_hour"]) == (numbers["window"] or (None, None))
    assert (view["window"]["trips"], view["window"]["total_amount"]) == numbers["window_trips"]
    assert (view["strays"]["trips"], view["strays"]["total_amount"]) == numbers["strays"]
    assert [(h["hour"], h["trips"]) for h in view["strays"]["hours"]] == numbers["stray_hours"]
    assert (view["refunds"]["trips"], view["refunds"]["total_amount"]) == numbers["refunds"]
    if zones is not None:
        for row in view["by_pickup_zone"]:
            assert (row["pickup_borough"], row["pickup_zone"]) == zones[row["pickup_location_id"]]
