"""The report of a deployed stack's tables, read where they are: the aggregates' cells, then (unless only the
aggregates are asked for) the three per-trip tables, and the HTML page when a path is given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripstream.infra.stack import StackNames
from tripstream.views import report as views
from tripstream.views.aggregates import NoAggregatesTable, read_cells
from tripstream.views.tables import read_tables

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from tripstream.views.zones import ZoneLookup


@dataclass(frozen=True)
class ReportOptions:
    """What `report` (and `run --report/--html`) asks of the report: the HTML page's path, the per-trip tables'
    scan segments, the length of the top lists, or only the aggregates' views."""

    html_path: Path | None = None
    segments: int = 4
    top_n: int = 10
    aggregates_only: bool = False


def stack_report(
    dynamodb: DynamoDBClient,
    names: StackNames,
    options: ReportOptions,
    *,
    zones: ZoneLookup | None,
    source: str,
    note: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """The report's data: the per-zone and per-hour views from zone_hourly_stats, the rest from the per-trip
    tables (none of them with `aggregates_only`, which raises `NoAggregatesTable` when there are no cells)."""
    stats_table = names.stats_table
    try:
        cells = read_cells(dynamodb, stats_table)
    except NoAggregatesTable as error:
        if options.aggregates_only:
            raise
        note(f"{error}; the report goes on without the aggregates' section")
        cells = None
    if cells is not None and options.aggregates_only:
        data = views.build_aggregate_report(cells, zones=zones, table=stats_table, source=source)
    else:
        tables = names.tables
        data = views.build_report(
            read_tables(dynamodb, tables, segments=options.segments),
            zones=zones,
            top_n=options.top_n,
            tables=tables | ({"zone_hourly_stats": stats_table} if cells is not None else {}),
            source=source,
            cells=cells,
        )
    html_path = options.html_path
    if html_path is not None:
        from tripstream.views.html import render_html

        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(data), encoding="utf-8")
        note(f"HTML report written to {html_path}")
    return data
