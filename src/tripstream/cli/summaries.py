"""The summaries of `run` and `replay` as the text the CLI prints (the CLI only prints them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tripstream.local.commands.replay import ReplaySummary
    from tripstream.local.commands.run_summary import RunSummary


def render_run_summary(summary: RunSummary) -> str:
    lines = [f"file            {summary.file} -> s3://{summary.bucket}/{summary.key}"]
    if summary.refused:
        lines.append(f"REFUSED         {summary.refused}")
        return "\n".join(lines)
    lines += [
        f"format          {summary.format} ({summary.service})",
        f"rows read       {summary.rows_read:,}",
        f"records sent    {summary.records_sent:,}",
        f"rows rejected   {sum(summary.rows_rejected.values()):,}"
        + "".join(f"\n  {reason:<22}{count:,}" for reason, count in summary.rows_rejected.items()),
        f"records consumed {summary.records_consumed:,} (rejected {sum(summary.records_rejected.values()):,})"
        + "".join(f"\n  {reason:<22}{count:,}" for reason, count in summary.records_rejected.items()),
        "items written",
        *(f"  {table:<24}{count:,}" for table, count in summary.table_items.items()),
        "duration categories",
        *(f"  {category:<24}{count:,}" for category, count in summary.duration_categories.items()),
        f"time            {summary.seconds:.1f} s ({summary.trips_per_second:,.0f} trips/s)"
        if summary.trips_per_second is not None
        else "",
        _memory_line(summary),
    ]
    if summary.blank_lines:
        lines.insert(3, f"blank lines     {summary.blank_lines:,} (skipped)")
    if summary.producer_errors:
        lines.append("producer errors " + "; ".join(summary.producer_errors[:3]))
    if summary.records_to_on_failure:
        lines.append(f"ON-FAILURE      {summary.records_to_on_failure:,} records sent to the on-failure queue")
    return "\n".join(line for line in lines if line)


def _memory_line(summary: RunSummary) -> str:
    """Peak memory of all the run's processes together, then each (largest first), with its CPU time."""
    if summary.peak_memory_bytes is None:
        return ""
    parts = [
        f"{name} {entry['peak_rss_bytes'] / 2**20:,.0f} MiB, {entry['cpu_seconds']:,.1f} s CPU"
        + (f" ({int(entry['count'])} processes)" if entry["count"] > 1 else "")
        for name, entry in sorted(summary.processes.items(), key=lambda item: -item[1]["peak_rss_bytes"])
    ]
    return f"peak memory     {summary.peak_memory_bytes / 2**20:,.0f} MiB all processes" + "".join(
        f"\n  {part}" for part in parts
    )


def render_replay_summary(summary: ReplaySummary) -> str:
    lines = [
        f"file             {summary.file} -> stream {summary.stream} at {summary.speed:g}x",
        f"format           {summary.format} ({summary.service})",
        f"rows read        {summary.rows_read:,}",
        f"rows rejected    {sum(summary.rows_rejected.values()):,}"
        + "".join(f"\n  {reason:<23}{count:,}" for reason, count in summary.rows_rejected.items()),
    ]
    if summary.outside_window:
        lines.append(f"outside --from/--until {summary.outside_window:,}")
    lines += [
        f"records sent     {summary.records_sent:,} of {summary.trips_to_send:,}"
        + (" (stopped by Ctrl-C)" if summary.interrupted else ""),
        f"pickups          {summary.first_pickup or '-'} .. {summary.sent_through or '-'}"
        + (f" (file goes on to {summary.last_pickup})" if summary.sent_through != summary.last_pickup else ""),
        "records consumed by the live `up` (see its output)"
        if summary.consumed_by_live_up
        else f"records consumed {summary.records_consumed:,} (rejected {sum(summary.records_rejected.values()):,})",
        "items written",
        *(f"  {table:<24}{count:,}" for table, count in summary.items_written.items()),
        f"time             {summary.seconds:.1f} s",
    ]
    if summary.send_error:
        lines.append(f"SEND ERROR       {summary.send_error}")
    if summary.records_to_on_failure:
        lines.append(f"ON-FAILURE       {summary.records_to_on_failure:,} records sent to the on-failure queue")
    return "\n".join(lines)
