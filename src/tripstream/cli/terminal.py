"""The terminal side the commands share: notes on stderr, rich's console, live progress, and signals."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from tripstream.cli.errors import EXIT_FAILED, CommandError

if TYPE_CHECKING:
    from tripstream.aws.clients import AwsClients
    from tripstream.cli.progress import LiveProgress


def note(message: str) -> None:
    # Notes go to stderr, so that stdout stays the summary alone (plain or --json).
    click.echo(message, err=True)


def console() -> Any:
    """rich's console on stdout; 160 columns when stdout is not a terminal (and COLUMNS is not set)."""
    import os

    from rich.console import Console

    # markup=False: what is printed includes stored values, which must never be read as rich markup.
    out = Console(soft_wrap=False, markup=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out = Console(soft_wrap=False, width=160, markup=False)
    return out


def live_progress(
    show: bool | None, as_json: bool, *, total: int | None, counters: tuple[str, ...] | None = None
) -> LiveProgress:
    """Bars when stderr is a terminal, else plain lines (none with --json unless asked for)."""
    from tripstream.cli.progress import COUNTERS, LiveProgress

    live = LiveProgress(total=total, counters=counters or COUNTERS)
    live.enabled = show if show is not None else not (as_json and live.plain)
    return live


def quiet_handler_logs() -> None:
    """The handlers log JSON lines for CloudWatch; on a terminal only their warnings are worth showing, on stderr
    (stdout is the summary alone). A refused file is the command's own one line, so its log line is dropped."""
    import logging

    from tripstream.handlers import consumer, producer

    for handler_module in (producer, consumer):
        handler_module.logger.setLevel("WARNING")
        handler = handler_module.logger.registered_handler
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    producer.logger.addFilter(_NotFileRefused())


class _NotFileRefused:
    def filter(self, record: Any) -> bool:
        return bool(record.getMessage() != "file refused")


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, what: str, *, sigterm: bool = False) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) sets `stop`; a second Ctrl-C quits at once (exit 1)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        note(f"stopping {what}..." + (" (Ctrl-C again to quit at once)" if signum == signal.SIGINT else ""))

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, on_signal)}
    if sigterm:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    except KeyboardInterrupt:
        note(f"{what} aborted")
        sys.exit(EXIT_FAILED)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def interruptible(what: str) -> Iterator[list[Callable[[], dict[str, int]]]]:
    """SIGTERM as Ctrl-C: the `with` blocks inside unwind (emulator stopped, temporary folders removed), then one
    line says what got done (from the counters registered in the yielded list) and the command exits 1."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    counters: list[Callable[[], dict[str, int]]] = []
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield counters
    except KeyboardInterrupt:
        counts = {name: count for counter in counters for name, count in counter().items()}
        done = ", ".join(f"{name.replace('_', ' ')} {count:,}" for name, count in counts.items())
        note(f"{what} interrupted" + (f": {done}" if done else "") + "; stopped and cleaned up")
        sys.exit(EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def existing_endpoint(endpoint_url: str | None, region: str | None) -> tuple[AwsClients, str]:
    """Clients for where the tables already are (`local.endpoint.existing_endpoint`), its routing noted."""
    from tripstream.local.endpoint import NoEndpoint
    from tripstream.local.endpoint import existing_endpoint as clients_of_existing

    try:
        return clients_of_existing(endpoint_url, region, note=note)
    except NoEndpoint as error:
        raise CommandError(str(error)) from error


def deploy_clients(endpoint_url: str | None, region: str | None) -> AwsClients:
    """Clients for `deploy`, `destroy` and `status` (`local.endpoint.deploy_clients`)."""
    from tripstream.local.endpoint import NoEndpoint
    from tripstream.local.endpoint import deploy_clients as clients_for_deploy

    try:
        return clients_for_deploy(endpoint_url, region)
    except NoEndpoint as error:
        raise CommandError(str(error)) from error
