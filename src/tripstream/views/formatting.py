"""The report's values as text, the same for a terminal (`tripstream.views.console`) and a page
(`tripstream.views.html`): amounts, numbers, zone labels, and the cells of the trip tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

# The columns every trip table starts with, as (header, numeric); `trip_cells` fills them.
TRIP_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("pickup", False),
    ("from", False),
    ("to", False),
    ("miles", True),
    ("fare", True),
)


def money(value: Decimal | None, missing: str = "-") -> str:
    """`$1,234.50` (`-$52.80` for a refund), or `missing` when there is no value."""
    if value is None:
        return missing
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def number(value: Decimal | None, suffix: str = "", missing: str = "-") -> str:
    """`1,234.50` and `suffix`, or `missing` when there is no value."""
    return missing if value is None else f"{value:,.2f}{suffix}"


def zone_label(row: Mapping[str, Any], prefix: str) -> str:
    """`Manhattan / Midtown Center (161)`, or the id alone without zone names, or `-`."""
    location = row.get(f"{prefix}_location_id")
    zone, borough = row.get(f"{prefix}_zone"), row.get(f"{prefix}_borough")
    if location is None:
        return "-"
    if not zone:
        return f"location {location}"
    name = zone if not borough or borough == zone else f"{borough} / {zone}"
    return f"{name} ({location})"


def trip_cells(trip: Mapping[str, Any], amounts: Sequence[str], missing: str = "-") -> list[str]:
    """A trip row's cells under `TRIP_COLUMNS`, then its fields `amounts` as money."""
    return [
        str(trip["pickup_datetime"]).replace("T", " "),
        zone_label(trip, "pickup"),
        zone_label(trip, "dropoff"),
        number(trip["trip_distance"], missing=missing),
        money(trip["fare_amount"], missing=missing),
        *(money(trip[field], missing=missing) for field in amounts),
    ]
