"""`tripstream aggregates rebuild`: zone_hourly_stats and its markers recomputed from the three per-trip tables.

For a stack deployed before the aggregates existed, or to repair them. Every trip found in at least one of the
three tables (the union of their trip_ids) is counted once into its cell and gets its marker; the two tables are
emptied first, so running it twice leaves the same table. What it cannot recover: a trip that went to none of the
three tables (no valid duration, not high-value, no fare ratio) was counted live but leaves no item to count
from; items written before they carried the money (total, fare, tip, distance) add only what they hold. Run it
while no consumer writes: a trip counted live during the rebuild may be lost or counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tripstream.aws.aggregates import CELL_KEYS, MARKER_EXPIRY_ATTRIBUTE, marker_expiry, replace_items
from tripstream.aws.dynamodb import scan_all, to_item
from tripstream.retry import backoff_factory
from tripstream.settings import Settings
from tripstream.trips.aggregates import by_cell, contribution_from_items, summed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class RebuildResult:
    trips: int  # trips counted (the union of the three tables' trip_ids)
    cells: int
    cells_replaced: int  # cells the table held before
    markers_replaced: int  # markers the table held before


def rebuild_aggregates(dynamodb: DynamoDBClient, settings: Settings) -> RebuildResult:
    if not (settings.zone_hourly_stats_table and settings.counted_trips_table):
        raise ValueError("ZONE_HOURLY_STATS_TABLE and COUNTED_TRIPS_TABLE must name the aggregates' tables")
    found: list[dict[str, dict[str, Any]]] = [
        {item["trip_id"]: item for item in scan_all(dynamodb, table)} for table in settings.table_names
    ]
    trip_ids = sorted(set().union(*found))
    contributions = [contribution_from_items(*(table.get(trip_id) for table in found)) for trip_id in trip_ids]
    cells = by_cell(contributions)
    new_backoff = backoff_factory(settings)
    cell_items = [
        to_item({**dict(zip(CELL_KEYS, cell, strict=True)), **summed(trips)}) for cell, trips in sorted(cells.items())
    ]
    expiry = {MARKER_EXPIRY_ATTRIBUTE: marker_expiry(settings.counted_trips_ttl_days * 86_400)}
    markers = [
        to_item({"trip_id": item.trip_id, **dict(zip(CELL_KEYS, item.cell, strict=True)), **expiry})
        for item in contributions
    ]
    # Markers first: a marker without its cell is the safe half (that trip is not counted again live).
    markers_replaced = replace_items(dynamodb, settings.counted_trips_table, ("trip_id",), markers, new_backoff)
    cells_replaced = replace_items(dynamodb, settings.zone_hourly_stats_table, CELL_KEYS, cell_items, new_backoff)
    return RebuildResult(len(contributions), len(cells), cells_replaced, markers_replaced)
