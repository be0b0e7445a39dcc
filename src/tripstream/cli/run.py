"""`run`, `replay` and `generate`: trips through the pipeline, on an endpoint or the embedded emulator."""

from __future__ import annotations

import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import click
import orjson

from tripstream.cli.console import interruptible, live_progress, note, quiet_handler_logs, stop_on_signals
from tripstream.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, CommandError, command_errors
from tripstream.cli.options import (
    backend_option,
    endpoint_url_option,
    html_option,
    json_option,
    parameter_option,
    progress_option,
    region_option,
    rows_option,
    seed_option,
    shards_option,
    stack_name_option,
    state_dir_option,
    template_parameters,
    zones_option,
)
from tripstream.cli.read import build_report, print_report
from tripstream.local.session import open_endpoint
from tripstream.local.stack import deploy_for_local_runtime
from tripstream.local.summaries import render_replay_summary, render_run_summary
from tripstream.trips.generate import write_sample


def refuse_early(file: Path, as_json: bool) -> None:
    """A file that cannot be sent is refused before any emulator starts: one line on stderr (and with --json,
    the summary on stdout), exit 3."""
    from tripstream.local.pipeline import RunSummary
    from tripstream.local.precheck import check_local_file
    from tripstream.trips.normalise import FileRefused

    try:
        check_local_file(file)
    except FileRefused as refused:
        if as_json:
            summary = RunSummary(file=str(file), bucket="", key="", refused=refused.detail)
            click.echo(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
        note(f"REFUSED {refused}")
        sys.exit(EXIT_REFUSED)


PICKUP_FORMATS = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


@click.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@endpoint_url_option("Use this running endpoint (LocalStack, moto, ...) instead of the embedded emulator.")
@region_option()
@stack_name_option()
@click.option("--key", help="S3 key to upload FILE as (default: the file's name).")
@shards_option()
@parameter_option()
@rows_option("Rows of the generated sample.")
@seed_option("Seed of the generated sample.")
@state_dir_option(
    "Folder for the shard checkpoints, and DynamoDB Local's tables with --backend dynamodb-local "
    "(default: .tripstream/ with --endpoint-url, temporary otherwise; DynamoDB Local then in memory)."
)
@backend_option()
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
    endpoint_url: str | None,
    region: str | None,
    stack_name: str,
    key: str | None,
    shards: int | None,
    parameters: tuple[str, ...],
    rows: int,
    seed: int,
    state_dir: Path | None,
    backend: str,
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
    from tripstream.local.live_client import run_file_live
    from tripstream.local.notifications import live_runtime_running
    from tripstream.local.pipeline import read_stack, run_file
    from tripstream.local.progress import estimate_rows

    quiet_handler_logs()
    stack_parameters = template_parameters(parameters, shards)
    if file is not None:
        refuse_early(file, as_json)
    with interruptible("run") as counters, tempfile.TemporaryDirectory(prefix="tripstream-") as scratch:
        if file is None:
            file = write_sample(Path(scratch) / "taxi_trips.csv", rows, seed=seed)
            note(f"generated {rows:,} trips (seed {seed}) in {file}")
        with command_errors():
            check_notified_key(key or file.name)
        with (
            command_errors() as errors,
            open_endpoint(
                endpoint_url,
                region=region,
                emulator_log=Path(scratch) / "emulator.log",
                backend=backend,
                state_dir=state_dir,
                dynamodb_local_log=Path(scratch) / "dynamodb-local.log",
            ) as endpoint,
        ):
            errors.where = endpoint.description
            note(f"endpoint: {endpoint.description}")
            live_up = not endpoint.embedded and live_runtime_running(endpoint.clients)
            if live_up:
                # `up` runs the producer and the only consumer: upload, and wait for what it reports.
                stack = read_stack(endpoint.clients, stack_name)
                note(f"a live `tripstream up` serves this endpoint: uploading, {stack_name} processes it")
            else:
                stack, deployed = deploy_for_local_runtime(
                    endpoint.clients, stack_name=stack_name, parameters=stack_parameters
                )
                note(f"stack {stack_name}: {'deployed' if deployed.changed else 'up to date'}")
            if state_dir is None and not endpoint.embedded:
                state_dir = Path(".tripstream")
            with live_progress(show_progress, as_json, total=estimate_rows(file)) as live:
                counters.append(lambda: live.counts)
                if live_up:
                    summary = run_file_live(endpoint.clients, stack, file, key=key, progress=live.callbacks())
                else:
                    summary = run_file(
                        endpoint.clients,
                        endpoint.handler_clients,
                        stack,
                        file,
                        key=key,
                        state_dir=state_dir,
                        progress=live.callbacks(),
                    )
            report_data = None
            if (with_report or html_path) and not summary.refused:
                report_data = build_report(endpoint.clients, stack_name, zones, endpoint.description, html_path)
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
@endpoint_url_option("Use this running endpoint instead of the embedded emulator.")
@region_option()
@stack_name_option()
@shards_option()
@parameter_option()
@state_dir_option("Folder for shard checkpoints.")
@json_option("summary")
@progress_option("Live progress on stderr.")
def replay(
    file: Path,
    speed: float,
    max_wait: float,
    start: datetime | None,
    end: datetime | None,
    limit: int | None,
    endpoint_url: str | None,
    region: str | None,
    stack_name: str,
    shards: int | None,
    parameters: tuple[str, ...],
    state_dir: Path | None,
    as_json: bool,
    show_progress: bool | None,
) -> None:
    """Send FILE's trips to the stream as a live feed, paced by pickup time at --speed, the consumer alongside.

    Ctrl-C stops cleanly: sending stops, the consumer finishes what was sent, the summary is printed (exit 0).
    A second Ctrl-C quits at once (exit 1).
    """
    from tripstream.local.notifications import live_runtime_running
    from tripstream.local.replay import Feed, replay_file

    quiet_handler_logs()
    stack_parameters = template_parameters(parameters, shards)
    refuse_early(file, as_json)
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="tripstream-") as scratch,
        stop_on_signals(stop, "replay"),
        command_errors() as errors,
        open_endpoint(endpoint_url, region=region, emulator_log=Path(scratch) / "emulator.log") as endpoint,
    ):
        errors.where = endpoint.description
        note(f"endpoint: {endpoint.description}")
        stack, deployed = deploy_for_local_runtime(endpoint.clients, stack_name=stack_name, parameters=stack_parameters)
        note(f"stack {stack_name}: {'deployed' if deployed.changed else 'up to date'}")
        if state_dir is None and not endpoint.embedded:
            state_dir = Path(".tripstream")
        consume = endpoint.embedded or not live_runtime_running(endpoint.clients)
        if not consume:
            note("a live `tripstream up` serves this endpoint: its runtime consumes what is sent")
        counters = ("records sent", "records consumed", "items written")
        with live_progress(show_progress, as_json, total=None, counters=counters) as live:

            def loaded(feed: Feed) -> None:
                live.set_total(len(feed.trips))
                first, last = (feed.trips[0].pickup, feed.trips[-1].pickup) if feed.trips else ("-", "-")
                note(f"{len(feed.trips):,} trips to send, picked up {first} to {last}, at {speed:g}x")

            summary = replay_file(
                endpoint.clients,
                endpoint.handler_clients,
                stack,
                file,
                speed=speed,
                max_wait=max_wait,
                start=start,
                end=end,
                limit=limit,
                stop=stop,
                progress=live.callbacks(),
                on_clock=lambda clock: live.set_status(f"feed clock {clock:%Y-%m-%d %H:%M:%S} ({speed:g}x)"),
                on_loaded=loaded,
                state_dir=state_dir,
                consume=consume,
            )
    if as_json:
        click.echo(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_replay_summary(summary))
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)


def check_notified_key(key: str) -> None:
    """Refuse a key the deployed stack would never process: on AWS only keys the bucket notification's filters match
    (the template's, compared case-sensitively as S3 does) reach the producer, so `run` takes the same keys; the
    rule is the live runtime's own (`local.notifications.matches`)."""
    from tripstream.infra.template import bucket_notification_filters, load_template, notification_suffixes
    from tripstream.local.notifications import matches

    template = load_template()
    if not matches(key, bucket_notification_filters(template)):
        suffixes = notification_suffixes(template)
        raise CommandError(
            f"{key!r} would never reach the producer on AWS: the bucket notifies it for keys ending in "
            f"{', '.join(suffixes)} only (S3 compares them case-sensitively). Rename the file or pass --key"
        )
