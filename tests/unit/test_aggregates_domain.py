"""The aggregates' pure parts: a trip's cell and increments, grouping, transaction planning, the token."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tripstream.aws.aggregates import (
    MARKER_EXPIRY_ATTRIBUTE,
    MAX_ACTIONS,
    AggregateTables,
    _actions,
    marker_expiry,
    plan_transactions,
    request_token,
)
from tripstream.infra.deploy import Status, format_status, table_names
from tripstream.settings import Settings
from tripstream.trips.aggregates import (
    CORE_COUNTERS,
    by_cell,
    contribution,
    contribution_from_items,
    pickup_hour,
    summed,
    zone_of,
)
from tripstream.trips.analytics import classify
from tripstream.trips.thresholds import Thresholds


def trip(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "trip_id": "t1",
        "pickup_datetime": "2024-03-10T01:59:00",
        "dropoff_datetime": "2024-03-10T03:10:00",  # across the spring change: 11 real minutes
        "total_amount": 60.5,
        "fare_amount": 50.0,
        "tip_amount": 8.0,
        "trip_distance": 10.25,
        "pickup_location_id": 132,
        "service": "yellow",
    }
    return {**values, **changes}


def test_a_trip_adds_to_its_zone_and_local_hour() -> None:
    one = trip()
    added = contribution(one, classify(one, Thresholds()))  # type: ignore[arg-type]
    assert added.cell == ("132", "2024-03-10T01")
    assert added.increments["trips"] == 1 and added.increments["high_value_trips"] == 1
    assert added.increments["medium"] == 1 and added.increments["short"] == 0
    assert added.increments["total_amount"] == Decimal("60.50")
    assert added.increments["duration_minutes"] == Decimal("11.00")


def test_missing_zone_and_total() -> None:
    one = trip(pickup_location_id=None, total_amount=None)
    added = contribution(one, classify(one, Thresholds()))  # type: ignore[arg-type]
    assert added.cell[0] == "unknown" and added.increments["total_amount"] == 0
    assert added.increments["high_value_trips"] == 0
    assert zone_of(Decimal("132")) == "132" and zone_of(None) == "unknown"
    with pytest.raises(ValueError):
        pickup_hour("2024-03-10")


def test_rebuild_from_items_equals_live() -> None:
    one = trip()
    items = classify(one, Thresholds())  # type: ignore[arg-type]
    live = contribution(one, items)  # type: ignore[arg-type]
    assert contribution_from_items(items.high_value, items.duration, items.fare_ratio) == live
    with pytest.raises(ValueError):
        contribution_from_items(None, None, None)


def test_a_refund_is_counted_apart_as_well_live_and_rebuilt() -> None:
    refund = trip(fare_amount=-52.0, tip_amount=0.0, total_amount=-52.8)
    items = classify(refund, Thresholds())  # type: ignore[arg-type]
    added = contribution(refund, items)  # type: ignore[arg-type]
    assert added.increments["refunds"] == 1 and added.increments["refund_amount"] == Decimal("-52.80")
    assert added.increments["total_amount"] == Decimal("-52.80")  # the net sum keeps it
    assert contribution_from_items(items.high_value, items.duration, items.fare_ratio) == added
    plain = contribution(trip(), classify(trip(), Thresholds()))  # type: ignore[arg-type]
    assert "refunds" not in plain.increments and summed([plain, added])["refunds"] == 1


def test_grouping_counts_a_trip_once_and_sums_exactly() -> None:
    a = contribution(trip(), classify(trip(), Thresholds()))  # type: ignore[arg-type]
    b = contribution(trip(trip_id="t2", total_amount=0.1), classify(trip(trip_id="t2"), Thresholds()))  # type: ignore[arg-type]
    cells = by_cell([a, a, b])
    assert [c.trip_id for c in cells[a.cell]] == ["t1", "t2"]
    total = summed(cells[a.cell])
    assert total["trips"] == 2 and total["total_amount"] == Decimal("60.60")
    assert set(CORE_COUNTERS) <= set(summed([]))


def test_transactions_hold_at_most_100_actions_and_each_cell_once() -> None:
    increments = {"trips": Decimal(1)}
    cells = {("1", "2024-01-01T00"): {f"big{i}": increments for i in range(250)}}
    cells |= {(str(z), "2024-01-01T01"): {f"z{z}-{i}": increments for i in range(z % 7 + 1)} for z in range(60)}
    plan = plan_transactions(cells)
    for parts in plan:
        assert sum(len(p.trips) + 1 for p in parts) <= MAX_ACTIONS
        assert len({p.cell for p in parts}) == len(parts)
    counted = [t for parts in plan for p in parts for t in p.trips]
    assert sorted(counted) == sorted(t for trips in cells.values() for t in trips)


def test_token_is_fixed_by_contents() -> None:
    tables = AggregateTables("stats", "markers")
    cells = {("1", "h"): {"a": {"trips": Decimal(1)}, "b": {"trips": Decimal(1)}}}
    first = _actions(tables, plan_transactions(cells)[0], 1_900_000_000)
    again = _actions(tables, plan_transactions(cells)[0], 1_900_000_000)
    fewer = _actions(tables, plan_transactions({("1", "h"): {"a": {"trips": Decimal(1)}}})[0], 1_900_000_000)
    assert request_token(first) == request_token(again) != request_token(fewer)
    assert len(request_token(first)) == 36
    update = first[-1]["Update"]
    assert update["UpdateExpression"] == "ADD #a0 :a0" and update["ExpressionAttributeValues"][":a0"] == {"N": "2"}
    assert first[0]["Put"]["ConditionExpression"] == "attribute_not_exists(trip_id)"
    # Every marker carries its expiry (epoch seconds, a Number): the markers table's TTL attribute.
    assert all(a["Put"]["Item"][MARKER_EXPIRY_ATTRIBUTE] == {"N": "1900000000"} for a in first if "Put" in a)


def test_marker_expiry_is_the_window_ahead_in_epoch_seconds() -> None:
    assert marker_expiry(90 * 86_400, now=1_700_000_000.7) == 1_700_000_000 + 90 * 86_400
    assert AggregateTables("s", "m").marker_ttl_seconds == Settings().counted_trips_ttl_days * 86_400


def test_status_lists_the_aggregates_tables() -> None:
    names = table_names()
    assert {"zone_hourly_stats", "zone_hourly_counted_trips"} <= set(names)
    state = Status("s", None, {}, {"name": "taxi_trips"}, dict.fromkeys(names, "0"), "n/a")
    assert "zone_hourly_stats" in format_status(state)


def test_a_conflict_on_one_cell_splits_it_off_and_the_others_go_at_once() -> None:
    from botocore.exceptions import ClientError

    from tripstream.aws.aggregates import AggregateStats, count_trips_once
    from tripstream.retry import Backoff

    cells = {
        (zone, "2024-01-15T08"): {f"{zone}-{n}": {"trips": Decimal(1)} for n in range(2)} for zone in ("1", "2", "3")
    }
    sent: list[list[str]] = []

    class Conflicting:
        def transact_write_items(self, **call: Any) -> None:
            keys = [a["Update"]["Key"]["pickup_location_id"]["S"] for a in call["TransactItems"] if "Update" in a]
            sent.append(keys)
            if len(sent) == 1:  # cell "2" (actions 3-5) is held by another consumer's transaction
                reasons = [{"Code": "TransactionConflict" if i in (3, 5) else "None"} for i in range(9)]
                error = {"Code": "TransactionCanceledException", "Message": "cancelled"}
                raise ClientError({"Error": error, "CancellationReasons": reasons}, "TransactWriteItems")  # type: ignore[typeddict-unknown-key]

    stats = AggregateStats()
    left = count_trips_once(
        Conflicting(),  # type: ignore[arg-type]
        AggregateTables("stats", "markers"),
        cells,
        lambda: Backoff(sleep=lambda _: None),
        stats,
    )
    assert left == [] and sent == [["1", "2", "3"], ["1", "3"], ["2"]]
    assert (stats.trips_counted, stats.transactions, stats.calls_retried) == (6, 2, 1)
