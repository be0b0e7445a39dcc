"""PartiQL against the tables (`ExecuteStatement`, every page followed), printed as a table, JSON or CSV.

    tripstream query "SELECT trip_id, total_amount FROM high_value_trips WHERE total_amount > 100"

Rows are plain values (numbers are `Decimal`). With the zone lookup, a row that has `pickup_location_id` /
`dropoff_location_id` gets `pickup_zone` / `dropoff_zone` ("Borough / Zone") right after it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import orjson

from tripstream.aws.dynamodb import execute_statement, from_attribute
from tripstream.views.report import jsonable
from tripstream.views.zones import ZoneLookup

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

FORMATS: Final = ("table", "json", "csv")
Row = dict[str, Any]


def _plain(attribute: dict[str, Any]) -> Any:
    """An AttributeValue -> a plain value; lists, maps and sets too (from_attribute knows the scalar kinds)."""
    ((kind, value),) = attribute.items()
    if kind == "L":
        return [_plain(v) for v in value]
    if kind == "M":
        return {k: _plain(v) for k, v in value.items()}
    if kind == "SS":
        return sorted(value)
    if kind == "NS":
        return sorted(Decimal(v) for v in value)
    if kind == "B":
        return value if isinstance(value, bytes) else bytes(value)
    return from_attribute(attribute)


def execute(
    dynamodb: DynamoDBClient,
    statement: str,
    *,
    page_size: int | None = None,
    max_rows: int | None = None,
    consistent_read: bool = False,
    on_page: Callable[[int], None] | None = None,
) -> Iterator[Row]:
    """The statement's rows, page after page (`NextToken`), stopping after `max_rows` when given."""
    kwargs: dict[str, Any] = {"Statement": statement, "ConsistentRead": consistent_read}
    if page_size is not None:
        kwargs["Limit"] = page_size
    produced = 0
    while True:
        response = execute_statement(dynamodb, kwargs)
        items = response.get("Items", [])
        if on_page is not None:
            on_page(len(items))
        for item in items:
            if max_rows is not None and produced >= max_rows:
                return
            yield {name: _plain(dict(value)) for name, value in item.items()}
            produced += 1
        token = response.get("NextToken")
        if not token or (max_rows is not None and produced >= max_rows):
            return
        kwargs["NextToken"] = token


def with_zones(rows: Iterable[Row], zones: ZoneLookup | None) -> Iterator[Row]:
    """Rows with `pickup_zone` / `dropoff_zone` after their location ids (unchanged without a lookup)."""
    for row in rows:
        if zones is None:
            yield row
            continue
        out: Row = {}
        for name, value in row.items():
            out[name] = value
            if name in ("pickup_location_id", "dropoff_location_id"):
                zone = zones.find(value)
                out[name.replace("_location_id", "_zone")] = zone.label if zone else None
        yield out


def columns_of(rows: Sequence[Row]) -> list[str]:
    """Every column, in order of first appearance; `trip_id` first when present."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row:
            seen.setdefault(name, None)
    names = list(seen)
    if "trip_id" in seen:
        names.remove("trip_id")
        names.insert(0, "trip_id")
    return names


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(jsonable(value)).decode()
    return str(value)


def format_json(rows: Sequence[Row]) -> str:
    return orjson.dumps(jsonable(list(rows)), option=orjson.OPT_INDENT_2).decode()


def format_csv(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = columns_of(rows)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_text(row.get(name)) for name in columns])
    return buffer.getvalue()


def rich_table(rows: Sequence[Row], title: str | None = None) -> Any:
    """A rich Table of the rows (numbers right-aligned). Every name and value is `Text`: stored text is never
    read as rich markup (`[/oops]` would crash the table, `[link=...]` would hide the value behind a link)."""
    from rich.table import Table
    from rich.text import Text

    columns = columns_of(rows)
    table = Table(title=Text(title) if title is not None else None, title_justify="left")
    for name in columns:
        numeric = any(isinstance(row.get(name), Decimal | int) for row in rows)
        keep_whole = numeric or name == "trip_id" or name.endswith("_datetime")
        table.add_column(Text(name), justify="right" if numeric else "left", overflow="fold", no_wrap=keep_whole)
    for row in rows:
        table.add_row(*(Text(_text(row.get(name))) for name in columns))
    return table
