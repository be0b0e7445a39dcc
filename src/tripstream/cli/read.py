"""`report`, `watch` and `query`: read the tables where they are."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tripstream.cli.errors import CommandError, command_errors
from tripstream.cli.options import (
    endpoint_url_option,
    html_option,
    json_option,
    region_option,
    stack_name_option,
    zones_option,
)
from tripstream.cli.terminal import console, existing_endpoint, note

if TYPE_CHECKING:
    from tripstream.aws.clients import AwsClients
    from tripstream.views.stack_report import ReportOptions
    from tripstream.views.zones import ZoneLookup

TABLES_ENDPOINT_HELP = (
    "The endpoint that holds the tables (default: AWS_ENDPOINT_URL*, e.g. from `tripstream up`; else AWS)."
)


def zone_lookup(source: str | None, *, download: bool = True) -> ZoneLookup | None:
    from tripstream.views.zones import ZonesError, load_zones

    try:
        result = load_zones(source, download=download)
    except ZonesError as error:
        raise click.BadParameter(str(error), param_hint="--zones") from error
    if result.note and source is None and download:
        note(result.note)
    return result.lookup


def build_report(
    clients: AwsClients, stack_name: str, zones: str | None, description: str, options: ReportOptions
) -> dict[str, Any]:
    """The report of the stack's tables (`views.stack_report`), its errors as the CLI's."""
    from tripstream.infra.stack import stack_names
    from tripstream.views.aggregates import NoAggregatesTable
    from tripstream.views.stack_report import stack_report

    names = stack_names(clients.cloudformation, stack_name)
    try:
        return stack_report(clients.dynamodb, names, options, zones=zone_lookup(zones), source=description, note=note)
    except NoAggregatesTable as error:
        raise CommandError(str(error)) from error


def print_report(data: dict[str, Any]) -> None:
    from tripstream.views.console import render_console

    console().print(render_console(data))


@click.command()
@endpoint_url_option(TABLES_ENDPOINT_HELP)
@region_option()
@stack_name_option("Where the table names come from.")
@html_option("Also write the HTML report.")
@json_option("report")
@zones_option()
@click.option("--segments", type=click.IntRange(1, 64), default=4, show_default=True, help="Parallel scan segments.")
@click.option("--top", "top_n", type=click.IntRange(1, 1000), default=10, show_default=True, help="Rows of top lists.")
@click.option(
    "--aggregates-only",
    is_flag=True,
    help="Only the views of zone_hourly_stats (per zone and hour): no scan of the per-trip tables.",
)
def report(
    endpoint_url: str | None,
    region: str | None,
    stack_name: str,
    html_path: Path | None,
    as_json: bool,
    zones: str | None,
    segments: int,
    top_n: int,
    aggregates_only: bool,
) -> None:
    """Report on the tables: trips and revenue per pickup hour and zone, high-value share, duration mix and a
    zone x hour heatmap (from the aggregates, zone_hourly_stats); durations, high-value trips, fares per mile and
    top trips (from the three per-trip tables).

    The tables are read where they are: an endpoint (`tripstream up` prints the variables to export) or AWS.
    """
    from tripstream.views.stack_report import ReportOptions

    with command_errors() as errors:
        clients, errors.where = existing_endpoint(endpoint_url, region)
        options = ReportOptions(html_path=html_path, segments=segments, top_n=top_n, aggregates_only=aggregates_only)
        data = build_report(clients, stack_name, zones, errors.where, options)
    if as_json:
        from tripstream.views.report import report_json

        click.echo(report_json(data))
    else:
        print_report(data)


@click.command()
@endpoint_url_option(TABLES_ENDPOINT_HELP)
@region_option()
@stack_name_option("Where the aggregates table's name comes from.")
@zones_option()
@click.option(
    "--interval", type=click.FloatRange(0.2, 3600), default=3.0, show_default=True, help="Seconds between refreshes."
)
@click.option("--once", is_flag=True, help="Print one snapshot and exit (also when stdout is not a terminal).")
@click.option("--top", "top_zones", type=click.IntRange(1, 100), default=10, show_default=True, help="Busiest zones.")
@click.option("--hours", type=click.IntRange(1, 168), default=12, show_default=True, help="Pickup hours shown.")
def watch(
    endpoint_url: str | None,
    region: str | None,
    stack_name: str,
    zones: str | None,
    interval: float,
    once: bool,
    top_zones: int,
    hours: int,
) -> None:
    """A live dashboard of the aggregates (zone_hourly_stats): trips and revenue per pickup hour, the busiest
    zones, high-value share, duration mix; redrawn every --interval seconds until Ctrl-C.
    """
    from tripstream.cli.terminal import stop_on_signals
    from tripstream.infra.stack import stack_names
    from tripstream.views.aggregates import NoAggregatesTable
    from tripstream.views.watch import WatchOptions
    from tripstream.views.watch import watch as run_watch

    options = WatchOptions(interval=interval, once=once, top_zones=top_zones, hours_shown=hours)
    stop = threading.Event()
    with command_errors() as errors, stop_on_signals(stop, "watch", sigterm=True):
        clients, errors.where = existing_endpoint(endpoint_url, region)
        table = stack_names(clients.cloudformation, stack_name).stats_table
        try:
            run_watch(
                clients.dynamodb, table, console(), options, where=errors.where, zones=zone_lookup(zones), stop=stop
            )
        except NoAggregatesTable as error:
            raise CommandError(str(error)) from error


@click.command()
@click.argument("statement")
@click.option(
    "--format", "output_format", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@endpoint_url_option(TABLES_ENDPOINT_HELP)
@region_option()
@zones_option()
@click.option("--max-rows", type=click.IntRange(1), help="Stop after this many rows.")
@click.option("--page-size", type=click.IntRange(1), help="Rows per ExecuteStatement call (Limit).")
def query(
    statement: str,
    output_format: str,
    endpoint_url: str | None,
    region: str | None,
    zones: str | None,
    max_rows: int | None,
    page_size: int | None,
) -> None:
    """Run a PartiQL STATEMENT against the tables and print the rows (every page).

    \b
    tripstream query "SELECT * FROM high_value_trips WHERE total_amount > 100"
    tripstream query "SELECT trip_id, fare_per_mile FROM distance_to_fare_ratio" --format csv
    """
    from tripstream.views.query import execute, format_csv, format_json, rich_table, with_zones

    with command_errors(statement=True) as errors:
        clients, description = existing_endpoint(endpoint_url, region)
        lookup = zone_lookup(zones, download=False)
        errors.where = description
        rows = list(with_zones(execute(clients.dynamodb, statement, page_size=page_size, max_rows=max_rows), lookup))
    if output_format == "json":
        click.echo(format_json(rows))
    elif output_format == "csv":
        click.echo(format_csv(rows), nl=False)
    else:
        console().print(rich_table(rows))
        note(f"{len(rows):,} rows")
