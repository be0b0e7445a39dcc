"""The aggregates' part of the HTML report: cards, trips per hour of day, and the zone x hour heatmap.

The heatmap is an `<svg class="chart" data-chart="zone-hour-heatmap">`: one row per busiest zone (names from the
TLC lookup), one column per hour of day 0-23, each cell a `class="mark"` rect with `data-value` (trips) and a
colour from light (few) to dark (many). Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tripstream.views.charts import WIDTH, Bar, card, column_chart, count_text, escaped, money_text
from tripstream.views.formatting import money, zone_label

_LOW = (0xF1, 0xEE, 0xF6)  # the colour of an empty cell
_HIGH = (0x3F, 0x00, 0x7D)  # the busiest cell


def heat_colour(value: int, largest: int) -> str:
    """A colour between `_LOW` (0) and `_HIGH` (`largest`), on a square-root scale (busy cells dominate less)."""
    fraction = (value / largest) ** 0.5 if largest > 0 and value > 0 else 0.0
    r, g, b = (round(low + (high - low) * fraction) for low, high in zip(_LOW, _HIGH, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(name: str, title: str, rows: Sequence[Mapping[str, Any]], *, label_width: int = 320) -> str:
    """Rows (zones) x 24 hours of day; `rows[i]["by_hour"]` holds 24 trip counts."""
    cell_h, top, bottom = 18, 8, 26
    width = max(WIDTH, label_width + 24 * 22 + 8)
    cell_w = (width - label_width - 8) / 24
    height = top + bottom + cell_h * max(1, len(rows))
    largest = max((count for row in rows for count in row["by_hour"]), default=0)
    out = [
        f'<svg class="chart" data-chart="{escaped(name)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escaped(title)}">',
        f"<title>{escaped(title)}</title>",
    ]
    fits = max(8, int((label_width - 12) / 6.2))
    for i, row in enumerate(rows):
        y = top + i * cell_h
        label = zone_label(row, "pickup")
        shown = label if len(label) <= fits else label[: fits - 1] + "\u2026"
        out.append(
            f'<text class="heat-label" x="{label_width - 6}" y="{y + 13}" text-anchor="end">{escaped(shown)}</text>'
        )
        for hour, count in enumerate(row["by_hour"]):
            x = label_width + hour * cell_w
            out.append(
                f'<rect class="mark" data-value="{count}" x="{x:.1f}" y="{y}" width="{cell_w - 1:.1f}" '
                f'height="{cell_h - 1}" fill="{heat_colour(count, largest)}">'
                f"<title>{escaped(f'{label}, {hour:02d}:00: {count:,} trips')}</title></rect>"
            )
    axis_y = top + cell_h * max(1, len(rows)) + 14
    for hour in range(0, 24, 2):
        x = label_width + hour * cell_w + cell_w / 2
        out.append(f'<text class="axis" x="{x:.1f}" y="{axis_y}" text-anchor="middle">{hour:02d}</text>')
    out.append("</svg>")
    return "".join(out)


def aggregates_section(view: Mapping[str, Any]) -> str:
    """Cards, the hour-of-day chart and the heatmap, all from the cells of zone_hourly_stats."""
    mix = [f"{c['category']} {c['share'] * 100:.1f}%" for c in view["duration_mix"]]
    cards = [
        card("trips", count_text(view["trips"]), f"{count_text(view['cells'])} zone-hour cells"),
        card("revenue", money_text(view["total_amount"]), "sum of total_amount"),
        card(
            "high-value share",
            f"{view['high_value_share'] * 100:.1f}%",
            f"{count_text(view['high_value_trips'])} high-value trips",
        ),
        card("duration mix", mix[0], ", ".join(mix[1:])),
    ]
    hour_bars = [
        Bar(
            f"{h['hour']:02d}",
            h["trips"],
            f"{h['hour']:02d}:00: {count_text(h['trips'])} trips, {money(h['total_amount'])}",
            "#6d597a",
        )
        for h in view["by_hour"]
    ]
    refunds, strays = view["refunds"], view["strays"]
    cards.append(
        card(
            "refunds",
            money_text(refunds["total_amount"]),
            f"{count_text(refunds['trips'])} trips with a negative total (inside the revenue)",
        )
    )
    cards.append(
        card(
            "stray-dated trips",
            count_text(strays["trips"]),
            f"{money(strays['total_amount'])} dated outside the window (in the totals, not in the charts)",
        )
    )
    rows = view["heatmap"]["rows"]
    span = f"pickup hours {view['first_hour']} to {view['last_hour']} (the window), " if view["first_hour"] else ""
    stray_hours = ", ".join(f"{h['hour']} ({count_text(h['trips'])})" for h in strays["hours"][:10])
    if len(strays["hours"]) > 10:
        stray_hours += f" and {len(strays['hours']) - 10:,} more hours"
    note = (
        '<p class="sub" data-section="strays">'
        + escaped(f"window: {view['window']['rule']}. ")
        + (escaped(f"Stray-dated, outside it: {stray_hours}.") if strays["trips"] else "No trip is dated outside it.")
        + "</p>"
    )
    return (
        '<h2 class="part">From the aggregates (zone_hourly_stats)</h2>'
        f'<div class="cards">{"".join(cards)}</div>'
        '<section><h2>Trips per hour of day</h2><p class="sub">'
        + escaped(f"{span}New York time")
        + "</p>"
        + note
        + column_chart("trips-by-hour", "Trips per pickup hour of day", hour_bars, label_every=2)
        + '</section><section data-section="heatmap"><h2>Busiest pickup zones by hour of day</h2><p class="sub">'
        + escaped(f"trips per zone and hour of day (darker: more); the {len(rows)} busiest zones")
        + "</p>"
        + (heatmap("zone-hour-heatmap", "Trips by pickup zone and hour of day", rows) if rows else "<p>no trips</p>")
        + "</section>"
    )
