"""The HTML report opened in a real browser (headless Chromium): every chart must render.

The page records, once laid out, how large each chart was drawn and how many of its bars have a visible size
(`data-rendered`, `data-drawn-marks`; see tripstream.views.html). Chromium's `--dump-dom` prints the DOM after
that script ran. Without Chromium (scripts/ensure-chromium installs Debian's package) this skips, and fails in CI.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import in_ci, require_tlc_samples
from report_oracle import (
    SAMPLE_2019,
    ZONES_CSV,
    cell_items,
    expected_aggregates,
    expected_cells,
    expected_numbers,
    read_trips,
    read_zones,
    table_items,
)
from support.trips import trips_file
from tripstream.views.aggregates import Cell
from tripstream.views.html import render_html
from tripstream.views.report import build_report
from tripstream.views.tables import TableItems
from tripstream.views.zones import parse_zone_lookup

pytestmark = [pytest.mark.e2e, pytest.mark.real_samples]
CHARTS = (
    "duration-categories",
    "duration-histogram",
    "high-value-by-hour",
    "high-value-by-zone",
    "fare-per-mile",
    "fare-tiers",
)


def chromium() -> str:
    for name in (os.environ.get("TRIPSTREAM_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    reason = "headless Chromium is not installed (scripts/ensure-chromium installs Debian's chromium)"
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def headless(browser: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_html_report_charts_render_in_chromium(tmp_path: Path) -> None:
    browser = chromium()
    require_tlc_samples(SAMPLE_2019.parent, SAMPLE_2019.name)
    expected = read_trips(SAMPLE_2019)
    report = build_report(TableItems(**table_items(expected)), zones=parse_zone_lookup(ZONES_CSV.read_bytes()))
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")

    dumped = headless(browser, "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert re.search(r'data-charts="6 6"', dom), "not every chart rendered: " + dom[:500]
    for name in CHARTS:
        tag = re.search(rf'<svg class="chart" data-chart="{name}"[^>]*>', dom)
        assert tag is not None, name
        size = re.search(r'data-rendered="(\d+)x(\d+)"', tag.group(0))
        marks = re.search(r'data-marks="(\d+)" data-drawn-marks="(\d+)"', tag.group(0))
        assert size is not None and marks is not None, tag.group(0)
        assert int(size.group(1)) >= 300 and int(size.group(2)) >= 40, (name, size.group(0))
        values = re.findall(r'class="mark" data-value="([\d.]+)"', dom.split(tag.group(0))[1].split("</svg>")[0])
        assert int(marks.group(2)) >= sum(1 for v in values if float(v) > 0) > 0, (name, marks.group(0))
    # The hour chart drew one bar per hour with high-value trips, as the file has them.
    hours = re.search(r'data-chart="high-value-by-hour"[^>]*data-drawn-marks="(\d+)"', dom)
    assert hours is not None
    assert int(hours.group(1)) == sum(1 for count in expected_numbers(expected)["by_hour"] if count)

    screenshot = tmp_path / "report.png"
    shot = headless(browser, f"--screenshot={screenshot}", "--window-size=1280,2200", page.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a blank page compresses to a few KB


def test_zone_hour_heatmap_renders_in_chromium(tmp_path: Path) -> None:
    """The aggregates' part of the page: every heatmap cell drawn, zone names escaped and shown (generated trips:
    the page, not TLC parsing, is under test)."""
    browser = chromium()
    expected = read_trips(trips_file(tmp_path / "trips.csv", 3000, seed=2019))
    cells = [Cell.from_item(item) for item in cell_items(expected_cells(expected))]
    report = build_report(
        TableItems(**table_items(expected)), zones=parse_zone_lookup(ZONES_CSV.read_bytes()), cells=cells
    )
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    dumped = headless(browser, "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    charts = len(CHARTS) + 2  # trips-by-hour and the heatmap
    assert re.search(rf'data-charts="{charts} {charts}"', dom), "not every chart rendered: " + dom[:500]
    tag = re.search(r'<svg class="chart" data-chart="zone-hour-heatmap"[^>]*>', dom)
    assert tag is not None
    size = re.search(r'data-rendered="(\d+)x(\d+)"', tag.group(0))
    drawn = re.search(r'data-marks="(\d+)" data-drawn-marks="(\d+)"', tag.group(0))
    assert size is not None and drawn is not None, tag.group(0)
    assert int(size.group(1)) >= 500 and int(size.group(2)) >= 200, size.group(0)
    numbers = expected_aggregates(expected)
    assert int(drawn.group(1)) == int(drawn.group(2)) == 24 * len(numbers["busiest"])
    heat = dom.split(tag.group(0))[1].split("</svg>")[0]
    zones = read_zones()
    for location, _ in numbers["busiest"]:
        assert html.escape(zones[location][1]) in heat, location
    shot = tmp_path / "heatmap.png"
    done = headless(browser, f"--screenshot={shot}", "--window-size=1280,1400", page.as_uri())
    assert done.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("TRIPSTREAM_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["TRIPSTREAM_KEEP_SCREENSHOT"])
