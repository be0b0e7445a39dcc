"""The report in a terminal: rich tables, bars and a sparkline (`render_console`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tripstream.views.formatting import TRIP_COLUMNS, money, number, trip_cells, zone_label
from tripstream.views.report import Report


def _bar(count: int, largest: int, width: int = 30) -> str:
    if largest <= 0 or count <= 0:
        return ""
    cells = count / largest * width
    return "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "") or "▏"


def sparkline(counts: Sequence[int], width: int = 1) -> str:
    """Counts as a line of block characters (empty for 0), each `width` characters wide."""
    blocks = "▁▂▃▄▅▆▇█"
    largest = max(counts, default=0)
    cells = []
    for count in counts:
        cell = " " if count <= 0 or largest <= 0 else blocks[min(7, int(count / largest * 7.999))]
        cells.append(cell * width)
    return "".join(cells)


def render_console(report: Report) -> Any:
    """The report as rich renderables (a Group) for a terminal."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    totals, duration = report["totals"], report["duration"]
    high, fares = report["high_value"], report["fare_per_mile"]
    parts: list[Any] = []
    heading = Text("tripstream report", style="bold")
    heading.append(f"  ({report['generated_at']}", style="dim")
    heading.append(f", zones: {report['zones'] or 'location ids only'})", style="dim")
    parts.append(heading)

    summary = Table(title="Totals", title_justify="left", show_header=False, box=None, padding=(0, 2))
    summary.add_row("trips (distinct)", f"{totals['trips']:,}")
    for table, count in totals["items"].items():
        summary.add_row(f"items in {table}", f"{count:,}")
    summary.add_row("high-value amount", money(totals["high_value_amount"]))
    parts.append(summary)

    durations = _table(
        f"Trip duration (median {number(duration['median_minutes'], ' min')})",
        (("category", False), ("trips", True), ("share", True), ("median", True), ("", False)),
    )
    largest = max((c["trips"] for c in duration["categories"]), default=0)
    for c in duration["categories"]:
        durations.add_row(
            c["category"],
            f"{c['trips']:,}",
            f"{c['share'] * 100:.1f}%",
            number(c["median_minutes"], " min"),
            Text(_bar(c["trips"], largest), style="cyan"),
        )
    parts.append(durations)

    threshold = f"> {money(high['threshold'])}" if high["threshold"] is not None else ""
    hours = Text(f"\nHigh-value trips {threshold} by pickup hour ({high['trips']:,} trips)\n", style="italic")
    hours.append("  " + sparkline(high["by_hour"], width=2) + "\n", style="magenta")
    hours.append("  " + "".join(f"{hour:<12d}" for hour in range(0, 24, 6)).rstrip() + "\n", style="dim")
    busiest = sorted(range(24), key=lambda hour: (-high["by_hour"][hour], hour))[:3]
    hours.append(
        "  busiest: "
        + ", ".join(f"{hour:02d}:00 ({high['by_hour'][hour]:,})" for hour in busiest if high["by_hour"][hour])
    )
    parts.append(hours)

    zones_table = _table(
        "High-value trips by pickup zone", (("pickup zone", False), ("trips", True), ("amount", True), ("", False))
    )
    largest = max((z["trips"] for z in high["by_pickup_zone"]), default=0)
    for z in high["by_pickup_zone"]:
        zones_table.add_row(
            zone_label(z, "pickup"),
            f"{z['trips']:,}",
            money(z["total_amount"]),
            Text(_bar(z["trips"], largest), style="magenta"),
        )
    if high["other_zones"]["trips"]:
        zones_table.add_row(f"{high['other_zones']['zones']} other zones", f"{high['other_zones']['trips']:,}", "", "")
    if high["unknown_zone_trips"]:
        zones_table.add_row("no location id", f"{high['unknown_zone_trips']:,}", "", "")
    parts.append(zones_table)

    fare_table = Table(title=f"Fare per mile ({fares['trips']:,} trips)", title_justify="left", show_header=False)
    percentiles = "  ".join(f"{name} {money(value)}" for name, value in fares["percentiles"].items())
    fare_table.add_row("percentiles", percentiles)
    fare_table.add_row("min / mean / max", f"{money(fares['min'])} / {money(fares['mean'])} / {money(fares['max'])}")
    fare_table.add_row(
        "tiers", "  ".join(f"{t['tier']} {t['trips']:,} ({t['share'] * 100:.1f}%)" for t in fares["tiers"])
    )
    parts.append(fare_table)

    profitable = report["most_profitable"]
    parts.append(
        _trip_table(
            f"Most profitable trips (fare per mile, trips of {profitable['min_distance_miles']}+ miles)",
            profitable["trips"],
            (("$/mile", "fare_per_mile"),),
        )
    )
    parts.append(
        _trip_table(
            "Highest-value trips", report["highest_value"]["trips"], (("tip", "tip_amount"), ("total", "total_amount"))
        )
    )
    return Group(*parts)


def _trip_table(title: str, trips: Sequence[Mapping[str, Any]], amounts: Sequence[tuple[str, str]]) -> Any:
    """A table of trips: the `TRIP_COLUMNS`, then the amounts given as (header, field)."""
    table = _table(title, (*TRIP_COLUMNS, *((header, True) for header, _ in amounts)))
    for trip in trips:
        table.add_row(*trip_cells(trip, [field for _, field in amounts]))
    return table


def _table(title: str, columns: Sequence[tuple[str, bool]]) -> Any:
    """A rich Table titled on the left, with `columns` as (header, numeric): numbers right-aligned."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for header, numeric in columns:
        table.add_column(header, justify="right" if numeric else "left")
    return table
