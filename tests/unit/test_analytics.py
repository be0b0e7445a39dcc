"""Canonical trip -> the items of the three tables: every rule at its boundaries, and every real sample against
the independent reference (tests/expected.py), without AWS."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from expected import CANONICAL_ORDER, expected_for
from tripstream.settings import Settings
from tripstream.trips.analytics import classify, elapsed_seconds
from tripstream.trips.generate import HEADER, generate_rows
from tripstream.trips.normalise import CanonicalTrip, TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.schema import CANONICAL_FIELDS
from tripstream.trips.thresholds import Thresholds

DEFAULTS = Thresholds()


def trip(**values: Any) -> CanonicalTrip:
    base: CanonicalTrip = dict.fromkeys(CANONICAL_FIELDS)
    base.update(
        trip_id="t-1",
        service="yellow",
        pickup_datetime="2019-01-17T18:00:00",
        dropoff_datetime="2019-01-17T18:20:00",
        trip_distance=3.0,
        fare_amount=15.0,
        total_amount=20.0,
    )
    base.update(values)
    return base


# ---------------------------------------------------------------- high_value_trips


@pytest.mark.parametrize(("total", "written"), [(50.0, False), (50.01, True), (-80.0, False), (None, False)])
def test_high_value_is_over_the_threshold(total: float | None, written: bool) -> None:
    item = classify(trip(total_amount=total, tip_amount=4.46, pickup_location_id=144), DEFAULTS).high_value
    assert (item is not None) == written
    if item is not None:
        assert item["total_amount"] == Decimal("50.01")
        assert item["tip_amount"] == Decimal("4.46")
        assert item["pickup_location_id"] == 144
        assert item["threshold"] == Decimal("50.00")
        assert item["pickup_datetime"] == "2019-01-17T18:00:00"


def test_numbers_are_decimals_from_their_text_never_binary_noise() -> None:
    item = classify(trip(total_amount=60.57, fare_amount=0.57, trip_distance=0.57), DEFAULTS)
    assert item.high_value is not None and item.fare_ratio is not None
    assert item.high_value["total_amount"] == Decimal("60.57")
    assert str(item.fare_ratio["fare_amount"]) == "0.57"
    for value in (*item.high_value.values(), *item.fare_ratio.values()):
        assert not isinstance(value, float)


# ---------------------------------------------------------------- trip_duration_analysis


@pytest.mark.parametrize(
    ("pickup", "dropoff", "minutes", "category"),
    [
        ("2019-01-17T18:00:00", "2019-01-17T18:00:01", Decimal("0.02"), "short"),
        ("2019-01-17T18:00:00", "2019-01-17T18:09:59", Decimal("9.98"), "short"),
        ("2019-01-17T18:00:00", "2019-01-17T18:10:00", Decimal("10.00"), "medium"),
        ("2019-01-17T18:00:00", "2019-01-17T18:29:59", Decimal("29.98"), "medium"),
        ("2019-01-17T18:00:00", "2019-01-17T18:30:00", Decimal("30.00"), "long"),
        ("2019-01-17T18:00:00", "2019-01-18T18:00:00", Decimal("1440.00"), "long"),  # exactly 24 h: still in
        # DST starts 2019-03-10 02:00 -> 03:00: 01:55 to 03:05 is 10 real minutes.
        ("2019-03-10T01:55:00", "2019-03-10T03:05:00", Decimal("10.00"), "medium"),
        # DST ends 2019-11-03 02:00 -> 01:00: 00:50 to 01:50 (first occurrence) is an hour.
        ("2019-11-03T00:50:00", "2019-11-03T01:50:00", Decimal("60.00"), "long"),
        # ... and 01:50 to 01:10 can only be the repeated hour: 20 minutes, not a negative trip.
        ("2019-11-03T01:50:00", "2019-11-03T01:10:00", Decimal("20.00"), "medium"),
    ],
)
def test_duration_is_real_elapsed_time_in_new_york(pickup: str, dropoff: str, minutes: Decimal, category: str) -> None:
    item = classify(trip(pickup_datetime=pickup, dropoff_datetime=dropoff), DEFAULTS).duration
    assert item is not None
    assert (item["duration_minutes"], item["duration_category"]) == (minutes, category)


@pytest.mark.parametrize(
    ("pickup", "dropoff"),
    [
        ("2019-01-17T18:00:00", "2019-01-17T18:00:00"),  # zero
        ("2019-01-17T18:00:00", "2019-01-17T17:00:00"),  # dropoff before pickup
        ("2019-01-17T18:00:00", "2019-01-18T18:00:01"),  # over 24 h
        ("2019-01-17T18:00:00", "2088-01-17T18:00:00"),
        # The repeated hour of 2024-11-03: a dropoff equal to its pickup is a zero-length trip, not 60 minutes.
        ("2024-11-03T01:30:00", "2024-11-03T01:30:00"),
    ],
)
def test_no_duration_item_outside_0_to_24_hours(pickup: str, dropoff: str) -> None:
    assert classify(trip(pickup_datetime=pickup, dropoff_datetime=dropoff), DEFAULTS).duration is None


def test_elapsed_seconds_across_the_spring_gap() -> None:
    assert elapsed_seconds("2019-03-10T01:59:59", "2019-03-10T03:00:00") == 1.0


# ---------------------------------------------------------------- distance_to_fare_ratio


@pytest.mark.parametrize(
    ("distance", "fare", "per_mile", "tier"),
    [
        (3.0, 15.0, Decimal("5.00"), "medium"),
        (3.0, 10.0, Decimal("3.33"), "medium"),
        (8.0, 23.96, Decimal("3.00"), "medium"),  # at the low bound
        (8.0, 23.92, Decimal("2.99"), "low"),
        (1.0, 6.0, Decimal("6.00"), "high"),
        (0.4, 2.5, Decimal("6.25"), "high"),
        (8.0, 0.2, Decimal("0.02"), "low"),  # 0.025: half-even
        (8.0, 0.28, Decimal("0.04"), "low"),  # 0.035: half-even
        (16.3, 50.5, Decimal("3.10"), "medium"),
    ],
)
def test_fare_per_mile_is_rounded_half_even_and_tiered(
    distance: float, fare: float, per_mile: Decimal, tier: str
) -> None:
    item = classify(trip(trip_distance=distance, fare_amount=fare), DEFAULTS).fare_ratio
    assert item is not None
    assert (item["fare_per_mile"], item["profitability_tier"]) == (per_mile, tier)


@pytest.mark.parametrize(
    ("distance", "fare"), [(0.0, 10.0), (3.0, 0.0), (3.0, -10.0), (-1.0, 10.0), (None, 10.0), (3.0, None), (0.004, 5.0)]
)
def test_no_ratio_without_a_positive_distance_and_fare(distance: float | None, fare: float | None) -> None:
    assert classify(trip(trip_distance=distance, fare_amount=fare), DEFAULTS).fare_ratio is None


def test_odd_but_real_trips_reach_only_the_tables_whose_rules_they_meet() -> None:
    refund = classify(trip(fare_amount=-52.0, total_amount=-52.8), DEFAULTS)
    assert (refund.high_value, refund.fare_ratio) == (None, None)
    assert refund.duration is not None


def test_every_threshold_comes_from_settings() -> None:
    settings = Settings.from_env(
        {
            "HIGH_VALUE_THRESHOLD": "10",
            "SHORT_TRIP_MINUTES": "25",
            "LONG_TRIP_MINUTES": "60",
            "MAX_DURATION_HOURS": "0.25",
            "LOW_FARE_PER_MILE": "6",
            "HIGH_FARE_PER_MILE": "10",
        }
    )
    items = classify(trip(), settings.thresholds)
    assert items.high_value is not None and items.high_value["threshold"] == Decimal("10")
    assert items.duration is None  # 20 minutes > 0.25 h
    short = classify(trip(dropoff_datetime="2019-01-17T18:14:00"), settings.thresholds).duration
    assert short is not None and short["duration_category"] == "short"
    assert items.fare_ratio is not None and items.fare_ratio["profitability_tier"] == "low"


# ---------------------------------------------------------------- every real sample against the reference


def test_the_reference_hashes_the_canonical_fields_in_their_order() -> None:
    """tests/expected.py states the trip_id recipe on its own; the product's field order must be the same (and must
    never change: every trip id would)."""
    assert CANONICAL_ORDER == CANONICAL_FIELDS


def _assert_items_match_the_reference(path: Path) -> None:
    """readers + normaliser + analytics (what producer and consumer do, minus AWS) against tests/expected.py, for
    every row of the file: the same trip ids, and in each table the same keys and values."""
    expected = expected_for(path)
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header)
    tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in expected.tables}
    ids = set()
    for row in trip_file.rows():
        assert row.fields is not None, (path.name, row)
        normalised = normaliser.normalise(row.fields, row.row_number)
        ids.add(normalised["trip_id"])
        items = classify(normalised, DEFAULTS)
        for name, item in zip(tables, (items.high_value, items.duration, items.fare_ratio), strict=True):
            if item is not None:
                tables[name][item["trip_id"]] = item
    assert ids == set(expected.trips), path.name
    for name, want in expected.tables.items():
        got = tables[name]
        assert set(got) == set(want), (path.name, name)
        wrong = [(key, got[key], values) for key, values in want.items() if {k: got[key][k] for k in values} != values]
        assert not wrong, (path.name, name, wrong[:3])


def test_every_real_sample_gives_the_items_the_reference_computes(tlc_samples: Path) -> None:
    for sample in sorted(tlc_samples.glob("*_sample*.csv")):
        _assert_items_match_the_reference(sample)


def test_a_whole_autumn_month_gives_the_items_the_reference_computes(tmp_path: Path) -> None:
    """A generated November 2024 (every day, the repeated hour of the 3rd included), with trips pinned in that
    hour: a dropoff equal to its pickup (zero-length), one before it (the second occurrence), one after it."""
    rows = generate_rows(40_000, seed=11, year=2024, month=11)
    pickup, dropoff = HEADER.index("tpep_pickup_datetime"), HEADER.index("tpep_dropoff_datetime")
    pinned = [
        ("2024-11-03 01:30:00", "2024-11-03 01:30:00"),
        ("2024-11-03 01:50:00", "2024-11-03 01:10:00"),
        ("2024-11-03 01:10:00", "2024-11-03 01:50:00"),
        ("2024-11-03 00:55:00", "2024-11-03 01:05:00"),
    ]
    for index, (start, end) in enumerate(pinned):
        row = list(rows[index])
        row[pickup], row[dropoff] = start, end
        rows.append(row)
    path = tmp_path / "yellow_2024-11.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    _assert_items_match_the_reference(path)
