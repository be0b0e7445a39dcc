"""Reading the analytics tables: their deployed names, and every item of each, scanned in parallel segments.

- `read_tables`: the three tables' items (`TableItems`), each table scanned by `parallel_scan` in parallel segments
  (`Segment`/`TotalSegments`), every page followed, only the attributes the report reads (`PROJECTIONS`).

Building the report from the items is `tripstream.views.report`; nothing here computes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tripstream.aws.dynamodb import from_item
from tripstream.settings import DURATION_TABLE, FARE_RATIO_TABLE, HIGH_VALUE_TABLE, PER_TRIP_TABLES

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]

DEFAULT_SEGMENTS = 4

# The attributes the report reads from each table (a projection: less to send, and moto's response
# serialisation, the slow part of a scan there, costs per attribute).
# The top lists' columns (views.report) come from these, with the zones and the key around them.
HIGH_VALUE_FIELDS = (
    "pickup_datetime",
    "dropoff_datetime",
    "total_amount",
    "fare_amount",
    "tip_amount",
    "trip_distance",
)
FARE_RATIO_FIELDS = ("pickup_datetime", "trip_distance", "fare_amount", "fare_per_mile", "profitability_tier")
_ZONES = ("pickup_location_id", "dropoff_location_id")
PROJECTIONS: dict[str, tuple[str, ...]] = {
    HIGH_VALUE_TABLE: ("trip_id", *HIGH_VALUE_FIELDS, *_ZONES, "threshold"),
    DURATION_TABLE: ("trip_id", "duration_minutes", "duration_category"),
    FARE_RATIO_TABLE: ("trip_id", *FARE_RATIO_FIELDS, *_ZONES),
}


def parallel_scan(
    dynamodb: DynamoDBClient,
    table: str,
    *,
    segments: int = DEFAULT_SEGMENTS,
    attributes: Sequence[str] | None = None,
    on_items: Callable[[int], None] | None = None,
) -> list[Item]:
    """Every item of `table` (plain values, Decimal numbers), read by `segments` concurrent scan segments;
    only `attributes` when given."""
    if segments < 1:
        raise ValueError(f"segments must be at least 1, not {segments}")

    def scan_segment(segment: int) -> list[Item]:
        items: list[Item] = []
        kwargs: dict[str, Any] = {"TableName": table}
        if attributes:
            names = {f"#a{i}": name for i, name in enumerate(attributes)}
            kwargs.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        if segments > 1:
            kwargs.update(Segment=segment, TotalSegments=segments)
        for page in dynamodb.get_paginator("scan").paginate(**kwargs):
            page_items = [from_item(item) for item in page.get("Items", [])]
            items.extend(page_items)
            if on_items is not None:
                on_items(len(page_items))
        return items

    if segments == 1:
        return scan_segment(0)
    with ThreadPoolExecutor(max_workers=segments, thread_name_prefix=f"scan-{table}") as pool:
        return [item for part in pool.map(scan_segment, range(segments)) for item in part]


@dataclass(frozen=True)
class TableItems:
    """The items of the three tables, keyed by logical name."""

    high_value: list[Item]
    duration: list[Item]
    fare_ratio: list[Item]

    def counts(self) -> dict[str, int]:
        return {
            HIGH_VALUE_TABLE: len(self.high_value),
            DURATION_TABLE: len(self.duration),
            FARE_RATIO_TABLE: len(self.fare_ratio),
        }


def read_tables(
    dynamodb: DynamoDBClient,
    tables: Mapping[str, str] | None = None,
    *,
    segments: int = DEFAULT_SEGMENTS,
    on_items: Callable[[int], None] | None = None,
) -> TableItems:
    """Scan the three tables (`tables`: logical -> deployed name), one after another, each in parallel segments."""
    names = {name: name for name in PER_TRIP_TABLES} | dict(tables or {})

    def scan(logical: str) -> list[Item]:
        return parallel_scan(
            dynamodb, names[logical], segments=segments, attributes=PROJECTIONS[logical], on_items=on_items
        )

    return TableItems(
        high_value=scan(HIGH_VALUE_TABLE), duration=scan(DURATION_TABLE), fare_ratio=scan(FARE_RATIO_TABLE)
    )
