"""`aggregates rebuild`: recompute zone_hourly_stats from the per-trip tables."""

from __future__ import annotations

import click

from tripstream.cli.errors import command_errors
from tripstream.cli.options import endpoint_url_option, region_option, stack_name_option
from tripstream.cli.terminal import existing_endpoint, note


@click.group()
def aggregates() -> None:
    """The real-time aggregates (zone_hourly_stats: trips, revenue, high-value share, duration mix per zone
    and NYC local pickup hour)."""


@aggregates.command()
@endpoint_url_option("The endpoint that holds the tables (default: AWS_ENDPOINT_URL*, e.g. from `tripstream up`).")
@region_option()
@stack_name_option("Where the table names come from.")
def rebuild(endpoint_url: str | None, region: str | None, stack_name: str) -> None:
    """Recompute zone_hourly_stats and its per-trip markers from the three per-trip tables.

    For a stack deployed before the aggregates existed, or to repair them. Both tables are emptied and
    recomputed from the union of the trip_ids of high_value_trips, trip_duration_analysis and
    distance_to_fare_ratio, so running it twice gives the same table.

    \b
    What it cannot recover:
    - a trip that went to none of the three tables (no valid duration, not high-value, no fare ratio):
      counted live, but nothing is left to count it from;
    - sums an item does not hold (items written before every table carried total/fare/tip/distance).
    Run it while no consumer writes: a trip counted live meanwhile may be lost or counted twice.
    """
    from tripstream.infra.stack import stack_names
    from tripstream.pipeline.aggregates_rebuild import rebuild_aggregates

    with command_errors() as errors:
        clients, errors.where = existing_endpoint(endpoint_url, region)
        settings = stack_names(clients.cloudformation, stack_name).table_settings()
        outcome = rebuild_aggregates(clients.dynamodb, settings)
    note(
        f"{settings.zone_hourly_stats_table}: {outcome.cells:,} cells from {outcome.trips:,} trips "
        f"(replaced {outcome.cells_replaced:,} cells and {outcome.markers_replaced:,} markers) on {errors.where}"
    )
