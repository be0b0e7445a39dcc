"""`tripstream watch`: a live terminal dashboard over the aggregates (zone_hourly_stats).

Each refresh reads every cell (a scan of the small aggregates table, never of the per-trip tables), builds the
views (`tripstream.views.aggregates.build_aggregates`) and redraws them with rich `Live`. Not on a terminal, or
with `once`, it prints one snapshot and returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tripstream.views.aggregates import DEFAULT_TOP_ZONES, build_aggregates, read_cells
from tripstream.views.console import render_aggregates
from tripstream.views.zones import ZoneLookup

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_INTERVAL = 3.0


def snapshot(
    dynamodb: DynamoDBClient, table: str, *, zones: ZoneLookup | None = None, top_zones: int = DEFAULT_TOP_ZONES
) -> dict[str, Any]:
    """The aggregates' views as they are now."""
    return build_aggregates(read_cells(dynamodb, table), zones=zones, top_zones=top_zones)


def render_dashboard(
    view: Mapping[str, Any], *, where: str, refreshed: datetime, interval: float | None, hours_shown: int = 12
) -> Any:
    """The dashboard: a heading (where, when, how often) above the aggregates' views."""
    from rich.console import Group
    from rich.text import Text

    heading = Text("tripstream watch", style="bold")
    heading.append(f"  {where}", style="dim")  # Text.append never parses markup
    heading.append(f"  {view['table']}  at {refreshed.isoformat(timespec='seconds')}", style="dim")
    if interval is not None:
        heading.append(f"  (every {interval:g}s, Ctrl-C to stop)", style="dim")
    return Group(heading, render_aggregates(view, hours_shown=hours_shown))


@dataclass(frozen=True)
class WatchOptions:
    """How the dashboard is drawn: every `interval` seconds (or `once`), the `top_zones` busiest zones, the last
    `hours_shown` pickup hours."""

    interval: float = DEFAULT_INTERVAL
    once: bool = False
    top_zones: int = DEFAULT_TOP_ZONES
    hours_shown: int = 12


def watch(
    dynamodb: DynamoDBClient,
    table: str,
    console: Any,
    options: WatchOptions,
    *,
    where: str,
    zones: ZoneLookup | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Show the dashboard on `console` (a rich Console) until `stop` is set; one snapshot when `options.once` or
    when the console is not a terminal. Returns how many times it was drawn."""
    from rich.live import Live

    once, interval = options.once, options.interval

    def frame() -> Any:
        view = snapshot(dynamodb, table, zones=zones, top_zones=options.top_zones)
        return render_dashboard(
            view, where=where, refreshed=clock(), interval=None if once else interval, hours_shown=options.hours_shown
        )

    if once or not console.is_terminal:
        console.print(frame())
        return 1
    from rich.console import Group
    from rich.text import Text

    stop = stop or threading.Event()
    drawn = 0
    last = frame()  # a failure here (no table, no endpoint) is the command's error
    with Live(last, console=console, auto_refresh=False, screen=False, transient=False) as live:
        drawn += 1
        live.refresh()
        while not stop.wait(interval):
            try:
                last = frame()
            except Exception as error:  # a live view outlives a failed refresh: show it, keep the last numbers
                live.update(Group(Text(f"refresh failed at {clock():%H:%M:%S}: {error}", style="red"), last))
            else:
                live.update(last)
            live.refresh()
            drawn += 1
    return drawn
