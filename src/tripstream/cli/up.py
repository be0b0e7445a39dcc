"""`up`: the stack live on this machine (the embedded emulator, or a stack at --endpoint-url)."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tripstream.cli.errors import EXIT_OK, CommandError, command_errors
from tripstream.cli.options import stack_options
from tripstream.cli.terminal import note, quiet_handler_logs, stop_on_signals

if TYPE_CHECKING:
    from tripstream.local.commands.options import StackOptions

Echo = Callable[[str], None]


@contextlib.contextmanager
def _display() -> Iterator[tuple[Echo, Echo | None]]:
    """On a terminal: lines in colour above one status line redrawn in place (rich Live); else plain lines."""
    if not sys.stdout.isatty():
        yield click.echo, None
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def style(line: str) -> str:
        return "bold red" if "REFUSED" in line or "GAVE UP" in line else "green" if " rows read, " in line else ""

    with Live(Text("starting ...", style="dim"), console=Console(markup=False), auto_refresh=False) as live:

        def echo(line: str) -> None:
            live.console.print(Text(line, style=style(line)))  # Text: stored keys are never markup

        def status(line: str) -> None:
            live.update(Text(line, style="dim"), refresh=True)

        yield echo, status


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=4566, show_default=True, help="0 picks a free port.")
@stack_options(
    endpoint_help="Attach to a stack deployed for the local runtime at this endpoint (a moto server, LocalStack) "
    "instead of starting the embedded emulator; `up` deploys it there if needed.",
    state_dir_help="Keep the data across restarts here: the shard checkpoints and the processed objects; with the "
    "embedded emulator also the tables and the stream's records (its store, on disk as they are written) and the "
    "bucket's objects (copied as they arrive, written back at start).",
)
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), help="Also write the exports here.")
@click.option("--status-seconds", type=click.FloatRange(0.1), default=5.0, show_default=True, hidden=True)
def up(port: int, stack: StackOptions, env_file: Path | None, status_seconds: float) -> None:
    """The stack live on this machine: S3 uploads by any client reach the producer, the stream's records the
    consumer, as on AWS.

    Prints the endpoint and the environment variables to export; the AWS CLI, boto3, `run`, `replay`, `report`,
    `watch` and `query` then use it too. Runs until Ctrl-C (or SIGTERM).
    """
    from tripstream.local.commands.up import UpOptions, run_up
    from tripstream.local.emulator.server import EmulatorError

    quiet_handler_logs()
    options = UpOptions(stack=stack, port=port, env_file=env_file, status_seconds=status_seconds)
    stop = threading.Event()
    with stop_on_signals(stop, "up", sigterm=True), command_errors(), _display() as (echo, on_status):
        try:
            run_up(options, stop, echo=echo, note=note, on_status=on_status)
        except EmulatorError as error:
            raise CommandError(f"{error}" + (" (is the port in use? try --port 0)" if port else "")) from error
    note("stopped")
    sys.exit(EXIT_OK)
