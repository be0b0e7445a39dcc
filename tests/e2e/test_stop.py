"""A stop is a stop: SIGTERM or Ctrl-C at any moment of `run`, `replay` or `up` ends every poller and worker before
the interpreter shuts down: the command exits within 5 s, nothing is written to stderr after its stop line, and a
later `run` with the same --state-dir against the same endpoint continues from the checkpoints and ends exact.

The endpoint is `tripstream emulator` in a process of its own (the stream and the tables outlive the stopped
command, as on AWS); the fault layer slows the consumer's writes so that the signal lands mid-consume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from support.cli import local_environment
from support.faults import ENVIRONMENT_VARIABLE, FaultPlan
from support.processes import TESTS, Stopped, assert_exact, cli, clients_of, patched_emulator, signal_when
from support.trips import trips_file
from tripstream.infra.stack import deploy_for_local_runtime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STOP_WITHIN_SECONDS = 5
ROWS = 1500
PARAMETERS = {"BatchSize": "25", "MaximumBatchingWindowInSeconds": "0"}
STACK = tuple(option for name, value in PARAMETERS.items() for option in ("--parameter", f"{name}={value}"))


def slow_consumer() -> dict[str, str]:
    """The CLI with its handlers' writes delayed (`python -m support.cli_with_faults`)."""
    return {
        ENVIRONMENT_VARIABLE: FaultPlan(seed=7, write_delay=0.05).to_json(),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }


def with_faults(*args: str) -> list[str]:
    return [sys.executable, "-m", "support.cli_with_faults", *args]


def consuming(state: Path) -> bool:
    """Both shards have a checkpoint: the consumer is under way."""
    found = 0
    for path in (state / "checkpoints").glob("*/*.json"):
        try:
            found += int(orjson.loads(path.read_bytes())["sequence_number"]) > 0
        except (orjson.JSONDecodeError, OSError):
            continue
    return found >= 2


def assert_stopped(stopped: Stopped, stop_line: str, returncode: int) -> None:
    assert stopped.returncode == returncode, stopped.stderr[-3000:]
    assert stopped.seconds < STOP_WITHIN_SECONDS, f"exit {stopped.seconds:.1f} s after the signal"
    lines = stopped.stderr.strip().splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith(stop_line)]
    assert at, stopped.stderr[-3000:]
    after = [line for line in lines[at[-1] + 1 :] if not line.startswith("[")]  # "[  5.0s] ...": progress
    assert not after, f"after the stop line: {after}"
    print(f"\n[stop] exit {stopped.seconds:.2f} s after the signal")


def resume_exact(path: Path, url: str, state: Path) -> None:
    """A second `run` with the same --state-dir against the same endpoint completes, exact."""
    second = subprocess.run(
        cli("run", str(path), "--endpoint-url", url, "--state-dir", str(state), *STACK, "--json"),
        capture_output=True,
        text=True,
        env=local_environment(),
        timeout=600,
        check=False,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    assert summary["records_to_on_failure"] == 0
    assert_exact(clients_of(url), path)


def stop_mid_consume_then_resume(
    tmp_path: Path,
    seed: int,
    command: Callable[[Path, str], list[str]],
    signum: int,
    stop_line: str,
    returncode: int,
    before: Callable[[Path, str], None] | None = None,
) -> Stopped:
    """`command(file, endpoint)` with the state folder and the slow consumer, `signum` once both shards are under
    way; the stop checked, then a second `run` with the same --state-dir that must end exact."""
    path = trips_file(tmp_path / "taxi_trips.csv", ROWS, seed=seed)
    state = tmp_path / "state"
    with patched_emulator(tmp_path / "emulator.log") as url:
        if before is not None:
            before(path, url)
        stopped = signal_when(
            with_faults(*command(path, url), "--endpoint-url", url, "--state-dir", str(state), *STACK),
            lambda _: consuming(state),
            signum,
            env=slow_consumer(),
        )
        assert_stopped(stopped, stop_line, returncode)
        resume_exact(path, url, state)
    return stopped


def test_sigterm_mid_consume_of_run_stops_and_a_second_run_continues_exact(tmp_path: Path) -> None:
    stop_mid_consume_then_resume(
        tmp_path, 2019, lambda path, _: ["run", str(path)], signal.SIGTERM, "run interrupted", returncode=1
    )


def test_sigint_mid_replay_stops_and_a_second_run_continues_exact(tmp_path: Path) -> None:
    stop_mid_consume_then_resume(
        tmp_path,
        2020,
        lambda path, _: ["replay", str(path), "--speed", "100000", "--max-wait", "0.01", "--json"],
        signal.SIGINT,
        "stopping replay",
        returncode=0,
    )


def test_sigterm_mid_consume_of_up_stops_and_a_second_run_continues_exact(tmp_path: Path) -> None:
    def upload_first(path: Path, url: str) -> None:
        # The object is in the bucket before `up` starts: its catch-up (objects not in the ledger) processes it.
        clients = clients_of(url)
        stack, _ = deploy_for_local_runtime(clients, parameters=PARAMETERS)
        clients.s3.upload_file(str(path), stack.bucket, path.name)

    stopped = stop_mid_consume_then_resume(
        tmp_path, 2021, lambda *_: ["up"], signal.SIGTERM, "stopped", returncode=0, before=upload_first
    )
    assert "stopping up" in stopped.stderr
