"""The read side of zone_hourly_stats: views against the independent oracle, console, HTML heatmap, watch."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from report_oracle import (
    ZONES_CSV,
    cell_items,
    check_aggregates,
    expected_aggregates,
    expected_cells,
    read_trips,
    read_zones,
)
from support.trips import trips_file
from tripstream.views.aggregates import Cell, build_aggregates, read_cells
from tripstream.views.console import render_console
from tripstream.views.html import render_html
from tripstream.views.html_aggregates import heat_colour
from tripstream.views.report import build_aggregate_report, build_report
from tripstream.views.tables import TableItems
from tripstream.views.watch import WatchOptions, watch
from tripstream.views.zones import parse_zone_lookup


class FakeDynamoDB:
    """Answers scans of one table with `items` (serialised), in pages of 2."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.scanned: list[str] = []

    def get_paginator(self, name: str) -> Any:
        assert name == "scan"
        outer = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                outer.scanned.append(kwargs["TableName"])
                serialised = [
                    {k: {"N": str(v)} if isinstance(v, Decimal | int) else {"S": v} for k, v in item.items()}
                    for item in outer.items
                ]
                return [{"Items": serialised[i : i + 2]} for i in range(0, max(1, len(serialised)), 2)]

        return Paginator()


def _text(renderable: Any) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Cell], dict[str, Any], Any]:
    """Generated trips (views, not TLC parsing, are under test), their cells as the oracle computes them."""
    expected = read_trips(trips_file(tmp_path_factory.mktemp("cells") / "trips.csv", 3000, seed=2019))
    cells = [Cell.from_item(item) for item in cell_items(expected_cells(expected))]
    return cells, expected_aggregates(expected), parse_zone_lookup(ZONES_CSV.read_bytes())


def test_views_match_the_oracle(sample: tuple[list[Cell], dict[str, Any], Any]) -> None:
    cells, numbers, zones = sample
    view = build_aggregates(cells, zones=zones)
    check_aggregates(view, numbers, read_zones())
    busiest = numbers["busiest"][0][0]
    assert view["by_pickup_zone"][0]["pickup_zone"] == read_zones()[busiest][1]  # the busiest pickup zone
    assert len(view["heatmap"]["rows"]) == 12


@pytest.fixture(scope="module")
def strays(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Cell], dict[str, Any]]:
    """A generated January 2024 with a pickup in 2088, one in 2009 and three refunds, as real months carry."""
    path = trips_file(tmp_path_factory.mktemp("strays") / "trips.csv", 3000, seed=2019, strays=True)
    expected = read_trips(path)
    return [Cell.from_item(item) for item in cell_items(expected_cells(expected))], expected_aggregates(expected)


def test_stray_dates_do_not_move_the_window_and_are_shown_as_strays(strays: tuple[list[Cell], dict[str, Any]]) -> None:
    cells, numbers = strays
    view = build_aggregates(cells)
    check_aggregates(view, numbers)
    assert (view["first_hour"][:7], view["last_hour"][:7]) == ("2024-01", "2024-01")  # where the month is
    assert [h["hour"] for h in view["strays"]["hours"]] == ["2009-01-01T00", "2088-01-24T00"]
    assert view["strays"]["trips"] == 2 and view["window"]["trips"] == view["trips"] - 2
    assert all(h["hour"].startswith("2024-01") for h in view["by_pickup_hour"])
    assert view["refunds"]["trips"] == 3 and view["refunds"]["total_amount"] < 0
    text = _text(render_console(build_aggregate_report(cells)))
    assert "window 2024-01-01T00 .. 2024-01-31T23" in text
    assert "stray-dated 2 trips" in text and "2088-01-24T00 (1)" in text and "2009-01-01T00 (1)" in text
    assert f"refunds 3 trips, -${-view['refunds']['total_amount']:,.2f}" in text
    html = render_html(build_aggregate_report(cells))
    assert "Stray-dated, outside it: 2009-01-01T00 (1), 2088-01-24T00 (1)" in html and "refunds" in html


@pytest.mark.parametrize(
    ("hours", "window"),
    [
        ({"2024-01-05T08": 500, "2024-03-02T10": 400, "2088-01-01T00": 1}, ("2024-01-05T08", "2024-03-02T10")),
        ({"2024-01-05T08": 500, "2024-01-11T09": 5, "2023-12-20T00": 1}, ("2024-01-05T08", "2024-01-11T09")),
        ({"2024-01-05T08": 1, "2030-01-01T00": 1}, ("2024-01-05T08", "2030-01-01T00")),  # two trips: both count
        ({f"{2000 + y}-01-01T00": 1 for y in range(200)} | {"2050-06-01T00": 1}, None),  # each run under 1%
        ({}, None),
    ],
)
def test_the_window_rule(hours: dict[str, int], window: tuple[str, str] | None) -> None:
    from tripstream.views.aggregates import pickup_window

    found = pickup_window(hours)
    if window is None and hours:  # no run holds 1%: the busiest (all tie at 1 trip: the latest)
        assert found == ("2199-01-01T00", "2199-01-01T00")
    else:
        assert found == window


def test_report_shows_the_aggregates_and_the_heatmap(sample: tuple[list[Cell], dict[str, Any], Any]) -> None:
    cells, numbers, zones = sample
    report = build_report(TableItems([], [], []), zones=zones, cells=cells)
    text = _text(render_console(report))
    assert "From the aggregates (zone_hourly_stats)" in text and "From the per-trip tables" in text
    assert f"{numbers['trips']:,} trips" in text and "Busiest pickup zones" in text
    html = render_html(report)
    charts = re.findall(r'<svg class="chart" data-chart="([^"]+)"', html)
    assert charts[:2] == ["trips-by-hour", "zone-hour-heatmap"]
    heat = html.split('data-chart="zone-hour-heatmap"')[1].split("</svg>")[0]
    values = [int(v) for v in re.findall(r'class="mark" data-value="(\d+)"', heat)]
    rows = [numbers["heatmap"][zone] for zone, _ in numbers["busiest"]]
    assert values == [count for row in rows for count in row]
    assert read_zones()[numbers["busiest"][0][0]][1] in heat


def test_aggregate_only_report_reads_no_per_trip_table() -> None:
    cells = [Cell("132", "2024-01-01T08", 3, Decimal("150.50"), 2, 0, 1, 2)]
    report = build_aggregate_report(cells, table="zone_hourly_stats-x")
    assert "totals" not in report and report["tables"] == {"zone_hourly_stats": "zone_hourly_stats-x"}
    text = _text(render_console(report))
    assert "From the per-trip tables" not in text and "location 132" in text
    html = render_html(report)
    assert 'data-chart="zone-hour-heatmap"' in html and "per-trip tables not read" in html


def test_stored_text_is_neither_markup_nor_html() -> None:
    evil = "[bold red]Evil[/] <script>alert(1)</script>"
    zones = parse_zone_lookup(f'LocationID,Borough,Zone\n7,Queens,"{evil}"\n'.encode())
    cells = [
        Cell("7", "2024-01-01T08", 5, Decimal("10"), 1, 1, 1, 1),
        Cell("unknown", "2024-01-01T09", 2, Decimal("3"), 0, 0, 0, 0),
    ]
    report = build_aggregate_report(cells, zones=zones)
    assert "[bold red]Evil[/]" in _text(render_console(report))
    html = render_html(report)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert report["aggregates"]["unknown_zone_trips"] == 2


def test_cells_with_missing_attributes_count_zero() -> None:
    cell = Cell.from_item({"pickup_location_id": "unknown", "pickup_hour": "2024-01-01T00", "trips": Decimal(4)})
    assert (cell.trips, cell.total_amount, cell.long) == (4, Decimal(0), 0)
    view = build_aggregates([])
    assert view["trips"] == 0 and view["high_value_share"] == 0 and view["first_hour"] is None


def test_heat_colour_runs_from_light_to_dark() -> None:
    assert heat_colour(0, 10) == "#f1eef6" and heat_colour(10, 10) == "#3f007d"
    assert heat_colour(5, 0) == "#f1eef6"


def test_watch_once_prints_one_snapshot_of_the_cells() -> None:
    items = [
        {"pickup_location_id": "161", "pickup_hour": "2024-01-01T08", "trips": 7, "total_amount": Decimal("99.5")},
        {"pickup_location_id": "161", "pickup_hour": "2024-01-01T09", "trips": 3, "high_value_trips": 1},
    ]
    client = FakeDynamoDB(items)
    assert read_cells(client, "stats")[0].trips == 7  # type: ignore[arg-type]
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False)
    drawn = watch(
        client,  # type: ignore[arg-type]
        "stats",
        console,
        WatchOptions(interval=1),
        where="test",
        clock=lambda: datetime(2024, 1, 1, tzinfo=UTC),
    )
    text = out.getvalue()
    assert drawn == 1 and client.scanned == ["stats", "stats"]
    assert "10 trips" in text and "location 161" in text and "2024-01-01 09:00" in text and "$99.50" in text
    assert "window 2024-01-01T08 .. 2024-01-01T09" in text and "stray-dated" not in text


def test_watch_once_keeps_its_window_where_the_month_is(strays: tuple[list[Cell], dict[str, Any]]) -> None:
    cells, numbers = strays
    items = [
        {"pickup_location_id": c.zone, "pickup_hour": c.hour, "trips": c.trips, "total_amount": c.total_amount}
        | ({"refunds": c.refunds, "refund_amount": c.refund_amount} if c.refunds else {})
        for c in cells
    ]
    out = io.StringIO()
    watch(FakeDynamoDB(items), "stats", Console(file=out, width=200), WatchOptions(once=True), where="test")  # type: ignore[arg-type]
    text = out.getvalue()
    last = numbers["by_pickup_hour"][-1][0]
    assert "window 2024-01-01T00 .. 2024-01-31T23" in text and "2088-01-24T00 (1)" in text
    assert f"last 12 of {len(numbers['by_pickup_hour'])} in the window" in text
    assert last.replace("T", " ") + ":00" in text and "2088-01-24 00:00" not in text
    assert "refunds 3 trips" in text


def test_watch_on_a_terminal_redraws_and_outlives_a_failed_refresh() -> None:
    import threading

    stop = threading.Event()
    cell = {"pickup_location_id": "132", "pickup_hour": "2024-01-01T08", "trips": 5}

    class Flaky(FakeDynamoDB):
        def get_paginator(self, name: str) -> Any:
            if len(self.scanned) == 1:
                self.scanned.append("failed")
                raise ConnectionError("the endpoint went away")
            if len(self.scanned) == 3:
                stop.set()
                self.items = [cell | {"trips": 9}]
            return super().get_paginator(name)

    client = Flaky([cell])
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    drawn = watch(client, "stats", console, WatchOptions(interval=0.01), where="test", stop=stop)  # type: ignore[arg-type]
    text = out.getvalue()
    assert drawn == 4  # the first, the failed refresh, two good ones
    assert "refresh failed" in text and "the endpoint went away" in text
    assert "5 trips" in text and "9 trips" in text


def test_a_missing_aggregates_table_says_what_to_do() -> None:
    from botocore.exceptions import ClientError

    from tripstream.views.aggregates import NoAggregatesTable

    class Missing:
        def get_paginator(self, name: str) -> Any:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}, "Scan")

    with pytest.raises(NoAggregatesTable, match="deploy the stack again"):
        read_cells(Missing(), "zone_hourly_stats")  # type: ignore[arg-type]
