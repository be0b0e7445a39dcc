"""`tripstream watch` in a real terminal: tmux runs it against the emulator, the test reads the screen.

The stack is deployed into the session's emulator; zone_hourly_stats is fed cells directly (the read side's
contract: whatever writes them), first a few, then more; the dashboard must show the numbers and zone names and
then their update. Without tmux (scripts/test installs it in CI) this skips, and fails when CI=true.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import in_ci
from support.cli import local_environment, reset_emulator
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import to_item
from tripstream.infra.stack import deploy_for_local_runtime, stack_names

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ZONES = 'LocationID,Borough,Zone,service_zone\n132,Queens,JFK Airport,Airports\n161,Manhattan,"Midtown Center",Yellow\n'


def tmux() -> str:
    path = shutil.which("tmux")
    if path:
        return path
    reason = "tmux is not installed (scripts/test installs Debian's tmux in CI; locally: apt-get install tmux)"
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


class Terminal:
    """One tmux server on a private socket (only this test's), one session running one command."""

    def __init__(self, binary: str, socket: str, env: dict[str, str]) -> None:
        self.binary, self.socket, self.env = binary, socket, env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "-L", self.socket, *args], capture_output=True, text=True, env=self.env, check=check
        )

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "watch", check=False).stdout

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"the screen never showed {what}:\n{text}")

    def alive(self) -> bool:
        return self.run("has-session", "-t", "watch", check=False).returncode == 0


@pytest.fixture
def deployed(emulator_endpoint: str) -> Iterator[AwsClients]:
    reset_emulator(emulator_endpoint)  # fixed table names: this test needs the endpoint to itself
    clients = AwsClients.create(endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    deploy_for_local_runtime(clients)
    yield clients


def _put(clients: AwsClients, table: str, zone: str, hour: str, trips: int, amount: str, high: int) -> None:
    clients.dynamodb.put_item(
        TableName=table,
        Item=to_item(
            {
                "pickup_location_id": zone,
                "pickup_hour": hour,
                "trips": trips,
                "total_amount": Decimal(amount),
                "high_value_trips": high,
                "short": trips - high,
                "medium": high,
                "long": 0,
            }
        ),
    )


def test_watch_shows_and_updates_the_aggregates_in_a_terminal(
    deployed: AwsClients, emulator_endpoint: str, tmp_path: Path
) -> None:
    binary = tmux()
    clients = deployed
    table = stack_names(clients.cloudformation, "tripstream").stats_table
    zones = tmp_path / "zones.csv"
    zones.write_text(ZONES, encoding="utf-8")
    _put(clients, table, "132", "2024-01-15T08", 40, "2400.50", 30)
    _put(clients, table, "161", "2024-01-15T08", 25, "410.25", 1)

    env = local_environment({"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "TERM": "xterm-256color"})
    # The pane's size, said to rich too: under load the first frames can be measured before tmux has sized the
    # pane (seen once: a dashboard cut to 24 rows for the whole minute).
    env |= {"COLUMNS": "160", "LINES": "80"}
    command = shlex.join(
        [
            sys.executable,
            "-m",
            "tripstream.cli",
            "watch",
            "--endpoint-url",
            emulator_endpoint,
            "--zones",
            str(zones),
            "--interval",
            "1",
        ]
    )
    terminal = Terminal(binary, f"tripstream-watch-{os.getpid()}", env)
    terminal.run("new-session", "-d", "-s", "watch", "-x", "160", "-y", "80", command)
    try:
        first = terminal.wait_for(lambda s: "65 trips" in s and "Midtown Center" in s, "the first cells")
        assert "Queens / JFK Airport (132)" in first
        assert "$2,810.75" in first  # revenue of both cells
        assert "2024-01-15 08:00" in first

        _put(clients, table, "161", "2024-01-15T09", 100, "1500.00", 0)  # Midtown overtakes JFK
        later = terminal.wait_for(lambda s: "165 trips" in s, "the update")
        assert "2024-01-15 09:00" in later and "$4,310.75" in later
        rows = [line for line in later.splitlines() if "JFK Airport" in line or "Midtown Center" in line]
        assert "Midtown Center" in rows[0], rows  # the busiest zone first

        terminal.run("send-keys", "-t", "watch", "C-c")
        deadline = time.monotonic() + 20
        while terminal.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not terminal.alive(), "watch did not stop on Ctrl-C"
    finally:
        terminal.run("kill-server", check=False)
        (Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / terminal.socket).unlink(missing_ok=True)
