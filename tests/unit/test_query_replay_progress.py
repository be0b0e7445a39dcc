"""PartiQL paging and output, the replay's schedule and feed, the progress display (no AWS)."""

from __future__ import annotations

import gzip
import io
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tripstream.cli.progress import ITEMS_WRITTEN, RECORDS_CONSUMED, ROWS_READ, LiveProgress, estimate_rows
from tripstream.local.commands.replay import load_feed, schedule
from tripstream.views.query import columns_of, execute, format_csv, format_json, with_zones
from tripstream.views.zones import parse_zone_lookup

ZONES = parse_zone_lookup(b"LocationID,Borough,Zone\n132,Queens,JFK Airport\n")

# ------------------------------------------------------------------------------------------------ query


class FakeDynamoDB:
    """execute_statement in pages of two, as DynamoDB pages a large result."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.calls: list[dict[str, Any]] = []

    def execute_statement(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        start = int(kwargs.get("NextToken", "0"))
        page = self.items[start : start + 2]
        response: dict[str, Any] = {"Items": page}
        if start + 2 < len(self.items):
            response["NextToken"] = str(start + 2)
        return response


def _item(n: int) -> dict[str, Any]:
    return {
        "trip_id": {"S": f"t{n}"},
        "total_amount": {"N": f"{50 + n}.25"},
        "pickup_location_id": {"N": "132"},
        "tags": {"L": [{"S": "a"}, {"N": "1"}]},
        "extra": {"M": {"k": {"BOOL": True}}},
        "set": {"NS": ["2", "1"]},
    }


def test_execute_follows_every_page_and_converts_values() -> None:
    client = FakeDynamoDB([_item(n) for n in range(5)])
    rows = list(execute(client, "SELECT * FROM high_value_trips", page_size=2))  # type: ignore[arg-type]
    assert [row["trip_id"] for row in rows] == ["t0", "t1", "t2", "t3", "t4"]
    assert len(client.calls) == 3 and client.calls[0]["Limit"] == 2 and client.calls[2]["NextToken"] == "4"
    assert rows[0]["total_amount"] == Decimal("50.25")
    assert rows[0]["tags"] == ["a", Decimal(1)] and rows[0]["extra"] == {"k": True} and rows[0]["set"] == [1, 2]


def test_execute_stops_at_max_rows() -> None:
    client = FakeDynamoDB([_item(n) for n in range(9)])
    assert len(list(execute(client, "SELECT", max_rows=3))) == 3  # type: ignore[arg-type]
    assert len(client.calls) == 2


def test_outputs_with_zone_names() -> None:
    rows = list(
        with_zones([{"total_amount": Decimal("60.5"), "trip_id": "t", "pickup_location_id": Decimal(132)}], ZONES)
    )
    assert list(rows[0]) == ["total_amount", "trip_id", "pickup_location_id", "pickup_zone"]
    assert rows[0]["pickup_zone"] == "Queens / JFK Airport"
    assert columns_of(rows)[0] == "trip_id"
    assert format_csv(rows) == "trip_id,total_amount,pickup_location_id,pickup_zone\nt,60.5,132,Queens / JFK Airport\n"
    assert json.loads(format_json(rows)) == [
        {"total_amount": 60.5, "trip_id": "t", "pickup_location_id": 132, "pickup_zone": "Queens / JFK Airport"}
    ]
    assert list(with_zones([{"pickup_location_id": 1}], None)) == [{"pickup_location_id": 1}]


# ------------------------------------------------------------------------------------------------ replay


def test_schedule_divides_gaps_by_speed_and_caps_them() -> None:
    start = datetime(2019, 1, 1, 8)
    pickups = [start, start + timedelta(minutes=1), start + timedelta(minutes=1), start + timedelta(days=400)]
    assert schedule(pickups, 60, 5) == [0.0, 1.0, 1.0, 6.0]
    assert schedule(pickups, 3600, 100) == pytest.approx([0.0, 1 / 60, 1 / 60, 1 / 60 + 100])
    assert schedule([], 60, 5) == []
    with pytest.raises(ValueError, match="positive"):
        schedule(pickups, 0, 5)


HEADER = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,trip_distance,PULocationID,fare_amount,total_amount\n"


def test_load_feed_sorts_by_pickup_keeps_the_window_and_counts_rejects(tmp_path: Path) -> None:
    path = tmp_path / "trips.csv"
    path.write_text(
        HEADER
        + "1,2019-01-01 10:00:00,2019-01-01 10:20:00,3.1,132,12,15\n"
        + "1,2019-01-01 08:00:00,2019-01-01 08:20:00,3.2,132,12,15\n"
        + "1,not a time,2019-01-01 08:20:00,3.3,132,12,15\n"
        + "1,2019-01-01 09:00:00,2019-01-01 09:20:00,3.4,132,12,15\n"
        + "1,2019-01-02 09:00:00,2019-01-02 09:20:00,3.5,132,12,15\n"
    )
    feed = load_feed(path)
    assert [t.pickup.hour for t in feed.trips] == [8, 9, 10, 9]
    assert feed.rows_read == 5 and feed.rows_rejected == {"invalid_timestamp": 1} and len(feed.rejects) == 1
    assert json.loads(feed.trips[0].data)["trip_distance"] == 3.2
    window = load_feed(path, start=datetime(2019, 1, 1, 9), end=datetime(2019, 1, 2))
    assert [t.pickup.hour for t in window.trips] == [9, 10] and window.outside_window == 2
    assert [t.pickup.hour for t in load_feed(path, limit=2).trips] == [8, 9]


# ------------------------------------------------------------------------------------------------ progress


def test_estimate_rows(tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv"
    csv_path.write_bytes(b"h1,h2\r\n1,2\r\n3,4")  # no newline at the end
    assert estimate_rows(csv_path) == 2
    gz_path = tmp_path / "a.csv.gz"
    gz_path.write_bytes(gzip.compress(b"h\n1\n2\n3\n"))
    assert estimate_rows(gz_path) == 3
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet_path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"x": list(range(7))}), parquet_path)
    assert estimate_rows(parquet_path) == 7
    assert estimate_rows(tmp_path / "missing.csv") is None


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    now = [0.0]
    with LiveProgress(total=100, stream=out, interval=3600, clock=lambda: now[0]) as live:
        assert live.plain
        callbacks = live.callbacks()
        assert callbacks.rows_read and callbacks.records_sent and callbacks.records_consumed and callbacks.items_written
        callbacks.rows_read(40)
        callbacks.records_sent(40)
        callbacks.records_consumed(20)
        callbacks.items_written(50)
        now[0] = 10.0
        callbacks.records_consumed(20)  # 2/s since the first consumed batch (tests/unit/test_progress_eta.py)
        live.set_status("feed clock 2019-01-01 08:00:00")
        line = live.line()
    assert "rows read 40/100 (4/s)" in line and "records consumed 40" in line and "items written 50" in line
    assert "ETA 30s" in line and "feed clock" in line
    assert out.getvalue().strip().endswith("done")  # one final line, nothing else within the interval
    assert live.counts[ITEMS_WRITTEN] == 50


def test_bars_on_a_terminal() -> None:
    out = FakeTerminal()
    with LiveProgress(total=10, stream=out, counters=(ROWS_READ, RECORDS_CONSUMED)) as live:
        assert not live.plain
        live.add(ROWS_READ, 12)  # more than the estimate: the total follows
        live.add(RECORDS_CONSUMED, 5)
        live.set_total(12)
    text = out.getvalue()
    assert "rows read" in text and "12/12" in text and "records consumed" in text


def test_disabled_progress_prints_nothing() -> None:
    out = io.StringIO()
    with LiveProgress(total=10, stream=out, enabled=False) as live:
        live.add(ROWS_READ, 3)
    assert out.getvalue() == "" and live.counts[ROWS_READ] == 3


def test_stored_values_are_never_rendered_as_markup() -> None:
    from rich.console import Console

    from tripstream.cli.terminal import console
    from tripstream.views.query import rich_table

    rows = [{"trip_id": "a", "payment_type": "[/oops]", "[b]col": "[link=https://evil.example]1[/link]"}]
    for out in (Console(record=True, width=200), console()):
        out.record = True
        out.print(rich_table(rows, title="[/title]"))
        text = out.export_text()
        assert "[/oops]" in text and "[link=https://evil.example]1[/link]" in text and "[b]col" in text
        assert "[/title]" in text
