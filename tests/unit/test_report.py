"""The report: its numbers against values computed independently from the input file; statistics; zones; HTML."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from conftest import require_tlc_samples
from report_oracle import SAMPLE_2019, ZONES_CSV, check_report, expected_numbers, read_trips, read_zones, table_items
from tripstream.views.console import render_console, sparkline
from tripstream.views.html import render_html
from tripstream.views.report import build_report, histogram, jsonable, median, percentile, report_json, top
from tripstream.views.tables import TableItems, parallel_scan
from tripstream.views.zones import ZONES_URL, ZonesError, load_zones, parse_zone_lookup


def _require_samples() -> None:
    require_tlc_samples(SAMPLE_2019.parent, SAMPLE_2019.name, ZONES_CSV.name)


@pytest.fixture(scope="module")
def sample_report() -> tuple[dict[str, object], dict[str, object], dict[int, tuple[str, str]]]:
    """The report of the whole 2019 sample's table items, and the figures the oracle expects of it."""
    _require_samples()
    expected = read_trips(SAMPLE_2019)
    items = table_items(expected)
    zones = parse_zone_lookup(ZONES_CSV.read_bytes(), str(ZONES_CSV))
    report = build_report(TableItems(**items), zones=zones)
    return report, expected_numbers(expected), read_zones()


# ------------------------------------------------------------------------------------------------ the numbers


def test_report_numbers_match_the_input_file(sample_report: tuple[dict, dict, dict]) -> None:  # type: ignore[type-arg]
    report, numbers, zones = sample_report
    check_report(report, numbers, zones)
    # Spot checks that the sample is what the oracle thinks it is (a 2019 month of yellow trips).
    assert numbers["items"]["high_value_trips"] > 500
    assert sum(numbers["by_hour"]) == numbers["items"]["high_value_trips"]
    assert numbers["top_zones"][0][0] == 132  # JFK Airport: where high-value trips start
    assert report["high_value"]["by_pickup_zone"][0]["pickup_zone"] == "JFK Airport"


def test_report_is_json_with_exact_numbers(sample_report: tuple[dict, dict, dict]) -> None:  # type: ignore[type-arg]
    report, numbers, _ = sample_report
    document = orjson.loads(report_json(report))
    assert document["totals"]["trips"] == numbers["trips"]
    assert Decimal(str(document["fare_per_mile"]["percentiles"]["p50"])) == numbers["percentiles"]["p50"]
    assert Decimal(str(document["totals"]["high_value_amount"])) == numbers["high_value_amount"]


def test_console_rendering_shows_the_sections(sample_report: tuple[dict, dict, dict]) -> None:  # type: ignore[type-arg]
    from rich.console import Console

    report, numbers, _ = sample_report
    console = Console(record=True, width=160, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render_console(report))
    text = console.export_text()
    for heading in ("Totals", "Trip duration", "by pickup hour", "by pickup zone", "Fare per mile", "Most profitable"):
        assert heading in text
    assert "Queens / JFK Airport (132)" in text
    assert f"{numbers['trips']:,}" in text


# ------------------------------------------------------------------------------------------------ statistics


def test_percentile_is_linear_interpolation_in_cents() -> None:
    values = [Decimal(v) for v in ("1", "2", "3", "4")]
    assert percentile(values, 50) == Decimal("2.50")
    assert percentile(values, 25) == Decimal("1.75")
    assert percentile(values, 0) == Decimal("1.00")
    assert percentile(values, 100) == Decimal("4.00")
    assert percentile([Decimal("7.123")], 90) == Decimal("7.12")
    assert percentile([], 50) is None
    assert median([Decimal("0.005"), Decimal("0.015")]) == Decimal("0.01")  # half-even
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile(values, 101)


def test_histogram_bins_are_half_open_with_an_open_last_bin() -> None:
    edges = [Decimal(0), Decimal(5), Decimal(10)]
    values = [Decimal(v) for v in ("-1", "0", "4.99", "5", "9.99", "10", "1000")]
    assert histogram(values, edges) == [3, 2, 2]


def test_top_breaks_ties_by_pickup_then_trip_id() -> None:
    items = [
        {"trip_id": "b", "pickup_datetime": "2019-01-01T00:00:00", "v": Decimal(5)},
        {"trip_id": "a", "pickup_datetime": "2019-01-01T00:00:00", "v": Decimal(5)},
        {"trip_id": "c", "pickup_datetime": "2018-12-31T00:00:00", "v": Decimal(5)},
        {"trip_id": "d", "pickup_datetime": "2019-01-01T00:00:00", "v": Decimal(9)},
        {"trip_id": "e", "pickup_datetime": "2019-01-01T00:00:00"},
    ]
    assert [i["trip_id"] for i in top(items, "v", 3)] == ["d", "c", "a"]


def test_an_empty_report_has_every_section() -> None:
    report = build_report(TableItems([], [], []))
    assert report["totals"]["trips"] == 0
    assert report["duration"]["median_minutes"] is None
    assert report["fare_per_mile"]["percentiles"]["p50"] is None
    assert report["high_value"]["by_hour"] == [0] * 24
    assert "<svg" in render_html(report)
    orjson.loads(report_json(report))


def test_jsonable_keeps_decimal_text_as_numbers() -> None:
    assert jsonable({"a": Decimal("26.76"), "b": Decimal("132"), "c": [Decimal("0.10")]}) == {
        "a": 26.76,
        "b": 132,
        "c": [0.1],
    }
    assert jsonable(Decimal("12345678901234567890.12")) == "12345678901234567890.12"


def test_sparkline() -> None:
    assert sparkline([0, 1, 8]) == " ▁█"
    assert sparkline([0, 0]) == "  "


def test_parallel_scan_reads_every_segment_and_page() -> None:
    class Paginator:
        def paginate(self, **kwargs: object) -> list[dict[str, object]]:
            segment = kwargs.get("Segment", 0)
            assert kwargs.get("TotalSegments") == 3
            return [{"Items": [{"trip_id": {"S": f"{segment}-{page}"}, "n": {"N": "1.50"}}]} for page in range(2)]

    class Client:
        def get_paginator(self, name: str) -> Paginator:
            assert name == "scan"
            return Paginator()

    pages: list[int] = []
    items = parallel_scan(Client(), "t", segments=3, on_items=pages.append)  # type: ignore[arg-type]
    assert sorted(i["trip_id"] for i in items) == ["0-0", "0-1", "1-0", "1-1", "2-0", "2-1"]
    assert items[0]["n"] == Decimal("1.50")
    assert sum(pages) == 6


# ------------------------------------------------------------------------------------------------ zones


def test_the_published_zone_lookup_parses() -> None:
    raw = ZONES_CSV.read_bytes()  # the published file, shipped as a test fixture
    assert b"\r\n" in raw and b'"' in raw  # CRLF and quoted fields, as published
    zones = parse_zone_lookup(raw)
    assert len(zones) == len(read_zones()) >= 263
    assert zones[132].borough == "Queens" and zones[132].zone == "JFK Airport"
    assert zones[1].label == "EWR / Newark Airport"
    assert zones.find(Decimal("161")) is zones[161]
    assert zones.find("x") is None and zones.find(99999) is None


def test_zone_lookup_variants_and_errors() -> None:
    lf = '\ufefflocationid,BOROUGH,zone\n7,"Queens","Astoria"\n\n8,Queens,"Astoria Park"\n'
    zones = parse_zone_lookup(lf.encode())
    assert zones[7].zone == "Astoria" and zones[8].label == "Queens / Astoria Park"
    with pytest.raises(ZonesError, match="not a TLC zone lookup"):
        parse_zone_lookup(b"a,b\n1,2\n")
    with pytest.raises(ZonesError, match="empty"):
        parse_zone_lookup(b"")


def test_load_zones_resolution(tmp_path: Path) -> None:
    good = b'"LocationID","Borough","Zone","service_zone"\r\n1,"EWR","Newark Airport","EWR"\r\n'
    fetched: list[str] = []

    def fetch(url: str, timeout: float) -> bytes:
        fetched.append(url)
        return good

    def offline(url: str, timeout: float) -> bytes:
        raise OSError("Name or service not known")

    cache = tmp_path / "cache" / "zones.csv"
    env: dict[str, str] = {}
    # Nothing given, online: the published file is downloaded once and cached.
    assert load_zones(None, environ=env, cache_path=cache, fetch=fetch).lookup is not None
    assert fetched == [ZONES_URL] and cache.read_bytes() == good
    assert load_zones(None, environ=env, cache_path=cache, fetch=offline).lookup is not None  # from the cache
    # Offline without a cache: no lookup, and a note that says what to do.
    result = load_zones(None, environ=env, cache_path=tmp_path / "none.csv", fetch=offline)
    assert result.lookup is None and result.note is not None and "--zones" in result.note
    # download=False never fetches.
    assert load_zones(None, environ=env, cache_path=tmp_path / "none.csv", fetch=fetch, download=False).lookup is None
    assert fetched == [ZONES_URL]
    # An explicit path, the environment variable, "none", a missing file.
    path = tmp_path / "z.csv"
    path.write_bytes(good)
    assert load_zones(path, environ=env, fetch=offline).lookup is not None
    assert load_zones(None, environ={"TRIPSTREAM_ZONES": str(path)}, fetch=offline).lookup is not None
    assert load_zones("none", environ=env, fetch=fetch).lookup is None
    with pytest.raises(ZonesError, match="cannot read"):
        load_zones(tmp_path / "missing.csv", environ=env, fetch=fetch)
    with pytest.raises(ZonesError, match="cannot download"):
        load_zones("https://example.invalid/z.csv", environ=env, fetch=offline)


# ------------------------------------------------------------------------------------------------ HTML


def test_html_report_is_self_contained(sample_report: tuple[dict, dict, dict]) -> None:  # type: ignore[type-arg]
    report, numbers, _ = sample_report
    html = render_html(report)
    # Nothing that a browser would fetch: no src/href attributes, no CSS url()/@import, no URL at all.
    assert not re.search(r"\b(src|href)\s*=", html, re.IGNORECASE)
    assert "url(" not in html and "@import" not in html
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE)
    charts = re.findall(r'<svg class="chart" data-chart="([^"]+)"', html)
    assert charts == [
        "duration-categories",
        "duration-histogram",
        "high-value-by-hour",
        "high-value-by-zone",
        "fare-per-mile",
        "fare-tiers",
    ]
    hour_chart = html.split('data-chart="high-value-by-hour"')[1].split("</svg>")[0]
    assert [int(v) for v in re.findall(r'class="mark" data-value="(\d+)"', hour_chart)] == numbers["by_hour"]
    assert "JFK Airport" in html and html.count("<tr>") >= 20


def test_html_escapes_text() -> None:
    report = build_report(TableItems([], [], []), source="<script>alert(1)</script>")
    assert "<script>alert(1)" not in render_html(report)
