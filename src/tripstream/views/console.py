"""The report in a terminal: rich tables, bars and a sparkline (`render_console`); the aggregates' views
(`render_aggregates`, shared with `tripstream watch`). Stored text goes into rich `Text`, never parsed as markup."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tripstream.views.formatting import TRIP_COLUMNS, money, number, trip_cells, zone_label
from tripstream.views.report import Report

HOURS_ON_SCREEN = 24
STRAY_HOURS_SHOWN = 5


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
    from rich.text import Text

    heading = Text("tripstream report", style="bold")
    heading.append(f"  ({report['generated_at']}", style="dim")
    heading.append(f", zones: {report['zones'] or 'location ids only'})", style="dim")
    parts: list[Any] = [heading]
    if report.get("aggregates") is not None:
        parts.append(Text("\nFrom the aggregates (zone_hourly_stats)", style="bold underline"))
        parts.append(render_aggregates(report["aggregates"]))
    if "totals" in report:
        parts.append(Text("\nFrom the per-trip tables", style="bold underline"))
        parts.append(_per_trip_sections(report))
    return Group(*parts)


def _per_trip_sections(report: Report) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    totals, duration = report["totals"], report["duration"]
    high, fares = report["high_value"], report["fare_per_mile"]
    parts: list[Any] = []

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

    parts.append(_zone_table("High-value trips by pickup zone", high, (("amount", _revenue),), "no location id"))

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


def render_aggregates(view: Mapping[str, Any], hours_shown: int = HOURS_ON_SCREEN) -> Any:
    """The aggregates' views: totals with refunds, the pickup window and the stray-dated trips outside it, duration
    mix, trips and revenue per pickup hour (the window's last `hours_shown`), the busiest zones with names."""
    from rich.console import Group
    from rich.text import Text

    summary = Text()
    summary.append(f"{view['trips']:,} trips", style="bold")
    summary.append(f"  revenue {money(view['total_amount'])}")
    summary.append(f"  high-value {view['high_value_trips']:,} ({view['high_value_share'] * 100:.1f}%)")
    summary.append(f"  cells {view['cells']:,}", style="dim")
    refunds, strays = view["refunds"], view["strays"]
    if refunds["trips"]:
        summary.append(f"\nrefunds {refunds['trips']:,} trips, {money(refunds['total_amount'])}", style="yellow")
        summary.append(" (negative totals, inside the revenue above)", style="dim")
    if view["first_hour"]:
        summary.append(f"\nwindow {view['first_hour']} .. {view['last_hour']}", style="bold")
        summary.append(f" ({view['window']['trips']:,} trips; {view['window']['rule']})", style="dim")
    if strays["trips"]:
        shown = ", ".join(f"{h['hour']} ({h['trips']:,})" for h in strays["hours"][:STRAY_HOURS_SHOWN])
        more = len(strays["hours"]) - STRAY_HOURS_SHOWN
        summary.append(
            f"\nstray-dated {strays['trips']:,} trips, {money(strays['total_amount'])}, outside the window"
            f" (in the totals, not in the hours below): {shown}" + (f" and {more:,} more hours" if more > 0 else ""),
            style="yellow",
        )

    mix = _table("Duration mix", (("category", False), ("trips", True), ("share", True), ("", False)))
    largest = max((c["trips"] for c in view["duration_mix"]), default=0)
    for c in view["duration_mix"]:
        mix.add_row(
            Text(c["category"]), f"{c['trips']:,}", f"{c['share'] * 100:.1f}%", Text(_bar(c["trips"], largest, 20))
        )

    rows = view["by_pickup_hour"][-hours_shown:] if hours_shown > 0 else []
    hours = _table(
        f"Trips and revenue per pickup hour (last {len(rows)} of {len(view['by_pickup_hour'])} in the window)",
        (("pickup hour", False), ("trips", True), ("revenue", True), ("high-value", True), ("", False)),
    )
    largest = max((r["trips"] for r in rows), default=0)
    for r in rows:
        hours.add_row(
            Text(str(r["hour"]).replace("T", " ") + ":00"),
            f"{r['trips']:,}",
            money(r["total_amount"]),
            f"{r['high_value_trips']:,}",
            Text(_bar(r["trips"], largest, 20), style="cyan"),
        )

    zones = _zone_table(
        "Busiest pickup zones",
        view,
        (("revenue", _revenue), ("high-value %", lambda z: f"{z['high_value_share'] * 100:.1f}%")),
        "unknown zone",
        bar_width=20,
    )
    by_day = Text("  by hour of day: ", style="dim")
    by_day.append(sparkline([h["trips"] for h in view["by_hour"]]), style="cyan")
    by_day.append("  (00..23)", style="dim")
    return Group(summary, by_day, mix, hours, zones)


def _trip_table(title: str, trips: Sequence[Mapping[str, Any]], amounts: Sequence[tuple[str, str]]) -> Any:
    """A table of trips: the `TRIP_COLUMNS`, then the amounts given as (header, field)."""
    table = _table(title, (*TRIP_COLUMNS, *((header, True) for header, _ in amounts)))
    for trip in trips:
        table.add_row(*trip_cells(trip, [field for _, field in amounts]))
    return table


ZoneColumn = tuple[str, Callable[[Mapping[str, Any]], str]]


def _revenue(zone: Mapping[str, Any]) -> str:
    return money(zone["total_amount"])


def _zone_table(
    title: str, view: Mapping[str, Any], columns: Sequence[ZoneColumn], unknown_label: str, *, bar_width: int = 30
) -> Any:
    """A view's pickup zones (`by_pickup_zone`, then the other zones and the trips without one): trips, `columns`
    (header, cell of a zone) and a bar."""
    from rich.text import Text

    table = _table(
        title, (("pickup zone", False), ("trips", True), *((name, True) for name, _ in columns), ("", False))
    )
    largest = max((zone["trips"] for zone in view["by_pickup_zone"]), default=0)
    for zone in view["by_pickup_zone"]:
        table.add_row(
            Text(zone_label(zone, "pickup")),
            f"{zone['trips']:,}",
            *(cell(zone) for _, cell in columns),
            Text(_bar(zone["trips"], largest, bar_width), style="magenta"),
        )
    blanks = [""] * (len(columns) + 1)
    if view["other_zones"]["trips"]:
        other = view["other_zones"]
        table.add_row(Text(f"{other['zones']} other zones"), f"{other['trips']:,}", *blanks)
    if view["unknown_zone_trips"]:
        table.add_row(Text(unknown_label), f"{view['unknown_zone_trips']:,}", *blanks)
    return table


def _table(title: str, columns: Sequence[tuple[str, bool]]) -> Any:
    """A rich Table titled on the left, with `columns` as (header, numeric): numbers right-aligned."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for header, numeric in columns:
        table.add_column(header, justify="right" if numeric else "left")
    return table
