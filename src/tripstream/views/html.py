"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no network, no external files.

Every chart is an `<svg class="chart" data-chart="NAME">` whose marks (bars) carry `class="mark"` and
`data-value`; hovering a mark shows its numbers (SVG `<title>`). A few lines of inline script, run when the page
is laid out, record on each chart how large it was drawn and how many of its marks have a visible size
(`data-rendered`, `data-marks`, `data-drawn-marks`), so that a headless browser can check that the charts rendered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tripstream.views.charts import (
    DASH,
    Bar,
    bar_chart,
    card,
    column_chart,
    count_text,
    escaped,
    money_text,
    number_text,
    stacked_bar,
)
from tripstream.views.formatting import TRIP_COLUMNS, trip_cells, zone_label
from tripstream.views.report import Report

_COLORS = {
    "short": "#2a9d8f",
    "medium": "#e9c46a",
    "long": "#e76f51",
    "low": "#8d99ae",
    "high": "#2a9d8f",
    "hour": "#6d597a",
    "zone": "#b56576",
    "duration": "#457b9d",
    "fare": "#2a9d8f",
}


def _range_label(start: Any, end: Any, unit: str = "") -> str:
    return f"{start}{DASH}{end}{unit}" if end is not None else f"{start}+{unit}"


def _table(headers: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], name: str) -> str:
    head = "".join(f'<th class="{"num" if numeric else ""}">{escaped(h)}</th>' for h, numeric in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if numeric else ""}">{escaped(cell)}</td>'
            for cell, (_, numeric) in zip(row, headers, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="empty">no trips</td></tr>'
    return f'<table data-table="{escaped(name)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _trips_section(
    heading: str, subtitle: str, headers: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], name: str
) -> str:
    table = _table(headers, rows, name)
    return f'<section><h2>{escaped(heading)}</h2><p class="sub">{escaped(subtitle)}</p>{table}</section>'


_CSS = """
:root { color-scheme: light; --ink: #1d2433; --muted: #5c6475; --line: #e3e6ec; --panel: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f8; color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { background: #1d2433; color: #fff; padding: 22px 32px 18px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; letter-spacing: .2px; }
header p { margin: 0; color: #c5cad6; font-size: 13px; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 40px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin-bottom: 18px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .4px; }
.card-value { font-size: 22px; font-weight: 650; margin-top: 2px; }
.detail { color: var(--muted); font-size: 12px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
h3 { font-size: 13px; margin: 4px 0 4px; color: var(--muted); font-weight: 600; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px;
  margin-bottom: 16px; overflow-x: auto; }
section h2 { font-size: 15px; margin: 0 0 2px; }
section p.sub { margin: 0 0 10px; color: var(--muted); font-size: 12.5px; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 6px 0; }
svg .grid { stroke: #eceef3; } svg .baseline { stroke: #9aa1b0; }
svg .axis { fill: #6b7385; font-size: 10.5px; } svg .label { fill: #2b3242; font-size: 12px; }
svg .value { fill: #4a5264; font-size: 11.5px; }
svg .marker { stroke: #1d2433; stroke-dasharray: 3 3; } svg .marker-label { fill: #1d2433; font-size: 10.5px; }
svg .mark:hover { opacity: .8; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: var(--muted); text-align: center; }
.pct { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 4px 0 8px; font-size: 13px; }
.pct b { font-variant-numeric: tabular-nums; }
h2.part { font-size: 16px; margin: 18px 0 10px; }
svg .heat-label { fill: #2b3242; font-size: 11px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 8px; }
"""

# Runs once the page is laid out: how large each chart was drawn, and how many of its marks are visible.
_CHECK_SCRIPT = """
(function () {
  var charts = document.querySelectorAll("svg.chart"), ok = 0;
  charts.forEach(function (svg) {
    var box = svg.getBoundingClientRect(), marks = svg.querySelectorAll(".mark"), drawn = 0, expected = 0;
    marks.forEach(function (mark) {
      var b = mark.getBoundingClientRect();
      if (parseFloat(mark.getAttribute("data-value")) > 0) { expected += 1; }
      if (b.width > 0 && b.height > 0) { drawn += 1; }
    });
    svg.setAttribute("data-rendered", Math.round(box.width) + "x" + Math.round(box.height));
    svg.setAttribute("data-marks", String(marks.length));
    svg.setAttribute("data-drawn-marks", String(drawn));
    if (box.width > 0 && box.height > 0 && drawn >= expected) { ok += 1; }
  });
  document.documentElement.setAttribute("data-charts", charts.length + " " + ok);
})();
"""


def render_html(report: Report) -> str:
    """The report as one HTML document (a str); nothing in it refers to anything outside it."""
    from tripstream.views.html_aggregates import aggregates_section

    sections: list[str] = []
    if report.get("aggregates") is not None:
        sections.append(aggregates_section(report["aggregates"]))
    if "totals" in report:
        sections.extend(_per_trip_sections(report))
        items = ", ".join(f"{name} {count_text(count)}" for name, count in report["totals"]["items"].items())
    else:
        items = "per-trip tables not read"
    subtitle = f"generated {report['generated_at']}" + (f" from {report['source']}" if report.get("source") else "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>tripstream report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>NYC taxi trips — tripstream report</h1><p>{escaped(subtitle)}</p></header>"
        f"<main>{''.join(sections)}</main>"
        f"<footer>items: {escaped(items)} · zones: {escaped(report.get('zones') or 'not loaded')}</footer>"
        f"<script>{_CHECK_SCRIPT}</script></body></html>\n"
    )


def _per_trip_sections(report: Report) -> list[str]:
    """The sections read from the three per-trip tables."""
    totals, duration = report["totals"], report["duration"]
    high, fares = report["high_value"], report["fare_per_mile"]
    sections: list[str] = ['<h2 class="part">From the per-trip tables</h2>']

    high_share = f"{high['trips'] / totals['trips'] * 100:.1f}% of trips" if totals["trips"] else ""
    cards = [
        card("trips", count_text(totals["trips"]), "distinct trip ids in the tables"),
        card("high-value trips", count_text(high["trips"]), high_share),
        card(
            "high-value amount",
            money_text(totals["high_value_amount"]),
            f"median {money_text(high['median_total_amount'])}",
        ),
        card(
            "median duration",
            number_text(duration["median_minutes"], " min"),
            f"{count_text(duration['trips'])} timed trips",
        ),
        card(
            "median fare per mile", money_text(fares["percentiles"].get("p50")), f"{count_text(fares['trips'])} trips"
        ),
    ]
    sections.append(f'<div class="cards">{"".join(cards)}</div>')

    categories = duration["categories"]
    category_bars = [
        Bar(
            c["category"],
            c["trips"],
            f"{c['category']}: {count_text(c['trips'])} trips ({c['share'] * 100:.1f}%), "
            f"median {number_text(c['median_minutes'], ' min')}",
            _COLORS.get(c["category"], _COLORS["duration"]),
        )
        for c in categories
    ]
    histogram_bars = [
        Bar(
            _range_label(b["from"], b["to"]),
            b["trips"],
            f"{_range_label(b['from'], b['to'], ' min')}: {count_text(b['trips'])} trips",
            _COLORS["duration"],
        )
        for b in duration["histogram"]
    ]
    category_rows = [
        [c["category"], count_text(c["trips"]), f"{c['share'] * 100:.1f}%", number_text(c["median_minutes"], " min")]
        for c in categories
    ]
    sections.append(
        '<div class="grid2"><section><h2>Trips per duration category</h2>'
        f'<p class="sub">short &lt; 10 min ≤ medium &lt; 30 min ≤ long; median of all timed trips '
        f"{escaped(number_text(duration['median_minutes'], ' min'))}</p>"
        + bar_chart("duration-categories", "Trips per duration category", category_bars, label_width=90)
        + _table(
            [("category", False), ("trips", True), ("share", True), ("median duration", True)],
            category_rows,
            "duration-categories",
        )
        + '</section><section><h2>Duration distribution</h2><p class="sub">trips per 5-minute bin</p>'
        + column_chart("duration-histogram", "Trips per duration bin (minutes)", histogram_bars, label_every=2)
        + "</section></div>"
    )

    hour_bars = [
        Bar(
            f"{hour:02d}",
            count,
            f"{hour:02d}:00{DASH}{hour:02d}:59: {count_text(count)} high-value trips",
            _COLORS["hour"],
        )
        for hour, count in enumerate(high["by_hour"])
    ]
    threshold = f"total over {money_text(high['threshold'])}" if high["threshold"] is not None else "high value"
    zone_bars = [
        Bar(
            zone_label(z, "pickup"),
            z["trips"],
            f"{zone_label(z, 'pickup')}: {count_text(z['trips'])} trips, {money_text(z['total_amount'])}",
            _COLORS["zone"],
        )
        for z in high["by_pickup_zone"]
    ]
    notes = []
    if high["other_zones"]["trips"]:
        notes.append(f"{count_text(high['other_zones']['trips'])} more in {high['other_zones']['zones']} other zones")
    if high["unknown_zone_trips"]:
        notes.append(f"{count_text(high['unknown_zone_trips'])} without a location id")
    if report.get("zones") is None:
        notes.append("zone names not loaded (use --zones)")
    sections.append(
        '<div class="grid2"><section><h2>High-value trips by hour of day</h2>'
        f'<p class="sub">{escaped(threshold)}; pickup hour, New York time</p>'
        + column_chart("high-value-by-hour", "High-value trips by pickup hour", hour_bars, label_every=2)
        + '</section><section><h2>High-value trips by pickup zone</h2><p class="sub">'
        + escaped("; ".join(notes) or "top pickup zones")
        + "</p>"
        + (
            bar_chart("high-value-by-zone", "High-value trips by pickup zone", zone_bars)
            if zone_bars
            else "<p>no high-value trips with a pickup location</p>"
        )
        + "</section></div>"
    )

    percentiles: Mapping[str, Decimal | None] = fares["percentiles"]
    fare_bars = [
        Bar(
            _range_label(b["from"], b["to"]),
            b["trips"],
            f"{_range_label(money_text(b['from']), money_text(b['to']) if b['to'] is not None else None)} per mile: "
            f"{count_text(b['trips'])} trips",
            _COLORS["fare"],
        )
        for b in fares["histogram"]
    ]
    edges = [float(b["from"]) for b in fares["histogram"]]
    markers = [
        (float(value), name)
        for name, value in percentiles.items()
        if name in ("p25", "p50", "p75", "p90") and value is not None
    ]
    scale = (edges[0], edges[-1] + (edges[-1] - edges[-2])) if len(edges) > 1 else None
    tier_parts = [
        Bar(
            t["tier"],
            t["trips"],
            f"{t['tier']}: {count_text(t['trips'])} ({t['share'] * 100:.1f}%)",
            _COLORS[t["tier"]],
        )
        for t in fares["tiers"]
    ]
    pct = "".join(
        f"<span>{escaped(name)} <b>{escaped(money_text(value))}</b></span>" for name, value in percentiles.items()
    )
    sections.append(
        '<section><h2>Fare per mile</h2><p class="sub">distribution of fare ÷ distance ($1 bins, dashed lines at '
        "percentiles) and profitability tiers</p>"
        f'<div class="pct">{pct}<span>min <b>{escaped(money_text(fares["min"]))}</b></span>'
        f"<span>mean <b>{escaped(money_text(fares['mean']))}</b></span>"
        f"<span>max <b>{escaped(money_text(fares['max']))}</b></span></div>"
        '<div class="grid2"><div>'
        + column_chart(
            "fare-per-mile",
            "Trips per fare-per-mile bin",
            fare_bars,
            label_every=2,
            markers=markers,
            marker_scale=scale,
        )
        + "</div><div><h3>Profitability tiers</h3>"
        + stacked_bar("fare-tiers", "Profitability tiers", tier_parts)
        + _table(
            [("tier", False), ("trips", True), ("share", True)],
            [[t["tier"], count_text(t["trips"]), f"{t['share'] * 100:.1f}%"] for t in fares["tiers"]],
            "fare-tiers",
        )
        + "</div></div></section>"
    )

    profitable = report["most_profitable"]
    sections.append(
        _trips_section(
            f"The {len(profitable['trips'])} most profitable trips",
            f"highest fare per mile among trips of at least {profitable['min_distance_miles']} miles",
            [*TRIP_COLUMNS, ("fare per mile", True), ("tier", False)],
            [
                [*trip_cells(t, ("fare_per_mile",), DASH), str(t["profitability_tier"] or "")]
                for t in profitable["trips"]
            ],
            "most-profitable",
        )
    )
    valuable = report["highest_value"]["trips"]
    sections.append(
        _trips_section(
            f"The {len(valuable)} highest-value trips",
            "highest total amount",
            [*TRIP_COLUMNS, ("tip", True), ("total", True)],
            [trip_cells(t, ("tip_amount", "total_amount"), DASH) for t in valuable],
            "highest-value",
        )
    )

    return sections
