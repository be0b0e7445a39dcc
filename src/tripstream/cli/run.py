"""`run`, `replay` and `generate`: trips through the pipeline, on an endpoint or the embedded emulator."""

from __future__ import annotations

import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from tripstream.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, CommandError, command_errors
from tripstream.cli.options import (
    html_option,
    json_option,
    progress_option,
    rows_option,
    seed_option,
    stack_options,
    zones_option,
)
from tripstream.cli.read import build_report, print_report
from tripstream.cli.summaries import render_replay_summary, render_run_summary
from tripstream.cli.terminal import interruptible, live_progress, note, quiet_handler_logs, stop_on_signals
from tripstream.trips.generate import write_sample

if TYPE_CHECKING:
    from collections.abc import Callable

    from tripstream.aws.clients import AwsClients
    from tripstream.cli.progress import LiveProgress
    from tripstream.local.commands.options import StackOptions
    from tripstream.local.commands.run import RunOutcome


def refuse_early(file: Path, as_json: bool) -> None:
    """A file that cannot be sent is refused before any emulator starts: one line on stderr (and with --json,
    the summary on stdout), exit 3."""
    from tripstream.local.commands.precheck import check_local_file
    from tripstream.local.commands.run_summary import RunSummary
    from tripstream.trips.normalise import FileRefused

    try:
        check_local_file(file)
    except FileRefused as refused:
        if as_json:
            summary = RunSummary(file=str(file), bucket="", key="", refused=refused.detail)
            click.echo(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
        note(f"REFUSED {refused}")
        sys.exit(EXIT_REFUSED)


REPLAY_COUNTERS = ("records sent", "records consumed", "items written")
PICKUP_FORMATS = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


STATE_DIR_HELP = (
    "Folder for the shard checkpoints, and DynamoDB Local's tables with --backend dynamodb-local "
    "(default: .tripstream/ with --endpoint-url, temporary otherwise; DynamoDB Local then in memory)."
)


@click.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@stack_options(
    endpoint_help="Use this running endpoint (LocalStack, moto, ...) instead of the embedded emulator.",
    state_dir_help=STATE_DIR_HELP,
)
@click.option("--key", help="S3 key to upload FILE as (default: the file's name).")
@rows_option("Rows of the generated sample.")
@seed_option("Seed of the generated sample.")
@json_option("summary")
@progress_option(
    "Live progress on stderr: bars on a terminal, a plain line every 5 s otherwise (default: on, except "
    "plain lines with --json)."
)
@click.option("--report", "with_report", is_flag=True, help="Also print the report of the tables after the run.")
@html_option("Write the HTML report.")
@zones_option("TLC zone lookup for --report/--html (see `report --help`).")
def run(
    file: Path | None,
    stack: StackOptions,
    key: str | None,
    rows: int,
    seed: int,
    as_json: bool,
    show_progress: bool | None,
    with_report: bool,
    html_path: Path | None,
    zones: str | None,
) -> None:
    """Run FILE (CSV, CSV.GZ or Parquet) through the whole pipeline and print a summary.

    Without FILE, a realistic sample of --rows generated trips is used. Without --endpoint-url (or the
    AWS_ENDPOINT_URL variables), an AWS emulator is started on 127.0.0.1 for the run and stopped after it.
    """
    from tripstream.cli.progress import estimate_rows
    from tripstream.local.commands.run import RunOptions, run_command

    quiet_handler_logs()
    if file is not None:
        refuse_early(file, as_json)
    with interruptible("run") as counters, tempfile.TemporaryDirectory(prefix="tripstream-") as scratch:
        file = file or generated_sample(Path(scratch), rows, seed)
        with command_errors():
            check_notified_key(key or file.name)
        report = report_builder(stack.stack_name, zones, html_path) if with_report or html_path else None
        with command_errors() as errors:
            outcome = run_command(
                RunOptions(stack=stack, file=file, key=key, report=report),
                scratch=Path(scratch),
                note=note,
                on_endpoint=errors.set_where,
                progress=lambda: registered(counters, live_progress(show_progress, as_json, total=estimate_rows(file))),
            )
    print_run_outcome(outcome, as_json=as_json, with_report=with_report)


def generated_sample(folder: Path, rows: int, seed: int) -> Path:
    file = write_sample(folder / "taxi_trips.csv", rows, seed=seed)
    note(f"generated {rows:,} trips (seed {seed}) in {file}")
    return file


def report_builder(stack_name: str, zones: str | None, html_path: Path | None) -> Callable[[AwsClients, str], Any]:
    """`run --report/--html`: the report of the run's tables, read while its endpoint is still up."""
    from tripstream.views.stack_report import ReportOptions

    options = ReportOptions(html_path=html_path)
    return lambda clients, where: build_report(clients, stack_name, zones, where, options)


def registered(counters: list[Callable[[], dict[str, int]]], live: LiveProgress) -> LiveProgress:
    """The live counts are what an interrupted run says it got done."""
    counters.append(lambda: live.counts)
    return live


def print_run_outcome(outcome: RunOutcome, *, as_json: bool, with_report: bool) -> None:
    summary, report_data = outcome.summary, outcome.report
    if as_json:
        from tripstream.views.report import jsonable

        document = summary.to_dict() | ({"report": jsonable(report_data)} if with_report and report_data else {})
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    elif not summary.refused:
        click.echo(render_run_summary(summary))
        if with_report and report_data is not None:
            print_report(report_data)
    if summary.refused:
        note(f"REFUSED {summary.refused}")
        sys.exit(EXIT_REFUSED)
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@rows_option()
@seed_option()
def generate(path: Path, rows: int, seed: int) -> None:
    """Write a realistic generated trips file (CSV, or Parquet for a .parquet PATH)."""
    with command_errors():
        write_sample(path, rows, seed=seed)
    click.echo(f"wrote {rows:,} trips to {path}")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--speed",
    type=click.FloatRange(0, min_open=True),
    default=60.0,
    show_default=True,
    help="Times real time: 60 sends an hour of pickups in a minute.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Longest pause (seconds) between two sends: quiet stretches of the data are shortened.",
)
@click.option(
    "--from", "start", type=click.DateTime(PICKUP_FORMATS), help="Only trips picked up at or after this time."
)
@click.option("--until", "end", type=click.DateTime(PICKUP_FORMATS), help="Only trips picked up before this time.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N trips (in pickup order).")
@stack_options(
    endpoint_help="Use this running endpoint instead of the embedded emulator.",
    state_dir_help="Folder for shard checkpoints.",
    backend=False,
)
@json_option("summary")
@progress_option("Live progress on stderr.")
def replay(
    file: Path,
    speed: float,
    max_wait: float,
    start: datetime | None,
    end: datetime | None,
    limit: int | None,
    stack: StackOptions,
    as_json: bool,
    show_progress: bool | None,
) -> None:
    """Send FILE's trips to the stream as a live feed, paced by pickup time at --speed, the consumer alongside.

    Ctrl-C (or SIGTERM) stops cleanly: sending stops, the consumer stops after a moment for what was sent (the
    rest is consumed by the next replay or run with the same --state-dir), the summary is printed (exit 0). A
    second Ctrl-C quits at once (exit 1).
    """
    from tripstream.local.commands.replay import FeedOptions, ReplayOptions, replay_command

    quiet_handler_logs()
    refuse_early(file, as_json)
    options = ReplayOptions(stack, file, FeedOptions(speed=speed, max_wait=max_wait, start=start, end=end, limit=limit))
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="tripstream-") as scratch,
        stop_on_signals(stop, "replay", sigterm=True),
        command_errors() as errors,
    ):
        summary = replay_command(
            options,
            stop,
            scratch=Path(scratch),
            note=note,
            on_endpoint=errors.set_where,
            progress=lambda: live_progress(show_progress, as_json, total=None, counters=REPLAY_COUNTERS),
        )
    click.echo(
        orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode()
        if as_json
        else render_replay_summary(summary)
    )
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)


def check_notified_key(key: str) -> None:
    """Refuse a key the deployed stack would never process: on AWS only keys the bucket notification's filters match
    (the template's, compared case-sensitively as S3 does) reach the producer, so `run` takes the same keys; the
    rule is the live runtime's own (`local.notifications.matches`)."""
    from tripstream.infra.template import bucket_notification_filters, load_template, notification_suffixes
    from tripstream.local.lambda_service.s3_notifications import matches

    template = load_template()
    if not matches(key, bucket_notification_filters(template)):
        suffixes = notification_suffixes(template)
        raise CommandError(
            f"{key!r} would never reach the producer on AWS: the bucket notifies it for keys ending in "
            f"{', '.join(suffixes)} only (S3 compares them case-sensitively). Rename the file or pass --key"
        )
