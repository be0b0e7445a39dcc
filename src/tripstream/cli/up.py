"""`up`: keep the embedded emulator running with the stack deployed."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import click

from tripstream.cli.console import note, quiet_handler_logs, stop_on_signals
from tripstream.cli.errors import EXIT_OK, CommandError, command_errors
from tripstream.cli.options import (
    backend_option,
    parameter_option,
    region_option,
    shards_option,
    stack_name_option,
    state_dir_option,
    template_parameters,
)
from tripstream.local.stack import deploy_for_local_runtime


@contextlib.contextmanager
def _dynamodb_local_for(backend: str, state_dir: Path | None) -> Iterator[str | None]:
    """DynamoDB Local's URL while it runs (on disk in state_dir/dynamodb-local when given) for that backend."""
    if backend != "dynamodb-local":
        yield None
        return
    from tripstream.local.dynamodb_local import DynamoDBLocal

    with DynamoDBLocal(state_dir=state_dir / "dynamodb-local" if state_dir is not None else None) as server:
        note(f"DynamoDB: {server.description}")
        yield server.endpoint_url


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=4566, show_default=True, help="0 picks a free port.")
@region_option()
@stack_name_option()
@shards_option()
@parameter_option()
@state_dir_option(
    "Keep the data across restarts here: the tables' items and the bucket's objects are saved when `up` stops "
    "and written back when it starts (the stream's records and queue messages are not kept)."
)
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), help="Also write the exports here.")
@backend_option()
@click.option("--status-seconds", type=click.FloatRange(0.1), default=5.0, show_default=True, hidden=True)
def up(
    port: int,
    region: str | None,
    stack_name: str,
    shards: int | None,
    parameters: tuple[str, ...],
    state_dir: Path | None,
    env_file: Path | None,
    backend: str,
    status_seconds: float,
) -> None:
    """Keep the embedded emulator running with the stack deployed, for the AWS CLI and other tools.

    Prints the endpoint and the environment variables to export; `run`, `replay`, `report` and `query` then use
    it too. Runs until Ctrl-C (or SIGTERM).
    """
    from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
    from tripstream.local.emulator import Emulator, EmulatorError
    from tripstream.local.live import serve_live
    from tripstream.local.session import region_from_env
    from tripstream.local.snapshot import load_snapshot

    quiet_handler_logs()
    stack_parameters = template_parameters(parameters, shards)
    region = region_from_env(region)
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="tripstream-up-") as scratch,
        stop_on_signals(stop, "up", sigterm=True),
        command_errors(),
        _dynamodb_local_for(backend, state_dir) as dynamodb_url,
    ):
        emulator = Emulator(port, log_path=(state_dir or Path(scratch)) / "emulator.log")
        try:
            url = emulator.start()
        except EmulatorError as error:
            raise CommandError(f"{error}" + (" (is the port in use? try --port 0)" if port else "")) from error
        try:
            clients = AwsClients.create(
                endpoint_url=url,
                region=region,
                credentials=EMULATOR_CREDENTIALS,
                service_endpoints={"dynamodb": dynamodb_url} if dynamodb_url else None,
            )
            handler_clients = AwsClients.create(
                endpoint_url=url,
                region=region,
                max_attempts=1,
                credentials=EMULATOR_CREDENTIALS,
                service_endpoints={"dynamodb": dynamodb_url} if dynamodb_url else None,
            )
            stack, _ = deploy_for_local_runtime(clients, stack_name=stack_name, parameters=stack_parameters)
            if state_dir is not None:
                restored = load_snapshot(clients, stack, state_dir)
                note(f"restored from {restored.path}: {restored.describe()}" if restored else f"state: {state_dir}")
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
            echo = click.echo
            saved = serve_live(
                clients, handler_clients, stack, stop, echo=echo, state_dir=state_dir, status_seconds=status_seconds
            )
            if saved is not None:
                note(f"saved to {saved.path}: {saved.describe()}")
        finally:
            emulator.stop()
    note("stopped")
    sys.exit(EXIT_OK)
