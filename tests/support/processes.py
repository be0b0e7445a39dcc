"""Real processes for the stop and endpoint tests: a server on a free port, the CLI signalled mid-run, and the
tables compared with the independent reference (tests/expected.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from expected import expected_aggregates, expected_for
from support.cli import local_environment
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.infra.stack import read_stack
from tripstream.settings import COUNTED_TRIPS_TABLE

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parents[1]
CELL_KEYS = ("pickup_location_id", "pickup_hour")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def server(command: Sequence[str], url: str, log: Path, timeout: float = 60) -> Iterator[str]:
    """`command` (a server) started, `url` once it answers HTTP; SIGTERM (then SIGKILL) on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=local_environment())
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None, f"{command[0]} ended: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"{command[0]} did not answer in {timeout} s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def plain_moto(log: Path) -> Iterator[str]:
    """`moto_server` as README "Another endpoint" once started it (moto as released)."""
    port = free_port()
    with server([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}", log) as url:
        yield url


@contextmanager
def patched_emulator(log: Path) -> Iterator[str]:
    """`tripstream emulator`: the embedded emulator served standalone."""
    port = free_port()
    with server([str(BIN / "tripstream"), "emulator", "--port", str(port)], f"http://127.0.0.1:{port}", log) as url:
        yield url


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tripstream.cli", *args]


@dataclass
class Stopped:
    returncode: int
    seconds: float  # from the signal to the exit
    stderr: str


def signal_when(
    command: Sequence[str],
    ready: Callable[[str], bool],
    signum: int,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 240,
) -> Stopped:
    """Start `command`, send `signum` once `ready(stderr so far)` holds, wait for the exit (at most 60 s)."""
    stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tripstream-stop-{os.getpid()}-{time.time_ns()}.err"
    with stderr_path.open("wb") as err:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env=local_environment(env), start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready(stderr_path.read_text(errors="replace")):
            assert process.poll() is None, f"ended before the signal: {stderr_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not ready in {timeout} s: {stderr_path.read_text()[-3000:]}"
            time.sleep(0.05)
        signalled = time.monotonic()
        process.send_signal(signum)
        with suppress(subprocess.TimeoutExpired):
            process.wait(60)
        seconds = time.monotonic() - signalled
        returncode = process.returncode if process.returncode is not None else -999
        return Stopped(returncode, seconds, stderr_path.read_text(errors="replace"))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        stderr_path.unlink(missing_ok=True)


def clients_of(endpoint_url: str) -> AwsClients:
    return AwsClients.create(endpoint_url=endpoint_url, region="us-east-1", credentials=EMULATOR_CREDENTIALS)


def assert_exact(clients: AwsClients, path: Path, stack_name: str = "tripstream") -> None:
    """The stack's three per-trip tables hold exactly the reference's trips, and zone_hourly_stats its cells (each
    trip counted once), with one marker per trip."""
    stack = read_stack(clients, stack_name)
    reference = expected_for(path).tables
    for name, table in stack.tables.items():
        got = sorted(item["trip_id"] for item in scan_all(clients.dynamodb, table))
        assert got == sorted(reference[name]), f"{name}: {len(got)} items, {len(reference[name])} expected"
    want = expected_aggregates(path)
    cells = {
        (item["pickup_location_id"], item["pickup_hour"]): {k: v for k, v in item.items() if k not in CELL_KEYS}
        for item in scan_all(clients.dynamodb, stack.stats_table)
    }
    assert set(cells) == set(want), "cells missing or extra"
    wrong = {cell: (cells[cell], want[cell]) for cell in want if cells[cell] != want[cell]}
    assert not wrong, f"{len(wrong)} cells differ, e.g. {next(iter(wrong.items()))}"
    markers = scan_all(clients.dynamodb, stack.aggregate_tables[COUNTED_TRIPS_TABLE])
    assert (
        len(markers)
        == sum(int(cell["trips"]) for cell in want.values())
        == sum(int(Decimal(cell["trips"])) for cell in cells.values())
    )
