"""The pipeline with its functions run as Lambda runs them (the deployment package in processes of their own,
through the Runtime API, each with its role's credentials, the emulator enforcing IAM): every trip where the
independent reference says, the consumer's figures read back from its log lines, the continuations of a file
invoked by the producer itself (`lambda:InvokeFunction`, queued by the emulator for the local service)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from expected import expected_for
from support.cli import run_cli
from support.processes import assert_exact
from support.trips import trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.infra.stack import deploy_for_local_runtime
from tripstream.local.commands.progress import Progress
from tripstream.local.commands.run import run_file
from tripstream.local.emulator.server import set_iam_enforcement

# A multiple of the 200 rows between deadline checks: the last continuation resumes at the very end of the object
# (which S3 refused as InvalidRange until the producer read nothing there instead).
ROWS = 600


@pytest.fixture
def enforcing_endpoint(fresh_endpoint: str) -> Iterator[str]:
    """The session emulator, enforcing IAM once the stack is deployed (switched off again after the test)."""
    try:
        yield fresh_endpoint
    finally:
        set_iam_enforcement(fresh_endpoint, False)


def test_a_file_through_isolated_functions_lands_exactly(
    enforcing_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tripstream.lambda")  # what the function processes print
    clients = AwsClients.create(endpoint_url=enforcing_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    stack, _ = deploy_for_local_runtime(clients)
    set_iam_enforcement(enforcing_endpoint, True)
    path = trips_file(tmp_path / "taxi_trips.csv", ROWS, seed=22)
    expected = expected_for(path)
    notes: list[str] = []
    rows_read: list[tuple[int, str]] = []  # increments, and the thread that reported each
    progress = Progress(rows_read=lambda rows: rows_read.append((rows, threading.current_thread().name)))
    summary = run_file(
        clients,
        clients,
        stack,
        path,
        in_process=False,
        credentials=EMULATOR_CREDENTIALS,
        note=notes.append,
        progress=progress,
        # Every invocation stops at its first deadline check and continues in a follow-up invocation.
        environment_overrides={"DEADLINE_MARGIN_SECONDS": "1000000"},
    )
    assert summary.ok, summary
    assert summary.producer_invocations == 4  # rows 1-200, 201-400, 401-600, then nothing left at the end
    # Each continuation was the producer's own lambda:InvokeFunction (it logs that once the call was accepted), and
    # the local service ran what the emulator queued: the file would not be complete otherwise.
    continued = [r for r in caplog.records if "continuing in a follow-up invocation" in r.getMessage()]
    assert len(continued) == summary.producer_invocations - 1
    assert not any("could not issue" in line or "would not queue" in line for line in notes)  # roles, real invoke
    assert summary.records_sent == ROWS and summary.records_consumed == ROWS
    # The producer's progress came from its "progress" log lines as the process printed them (the thread reading its
    # output, while the invocation ran), once per invocation here, not from its per-object line after the fact.
    assert sum(rows for rows, _ in rows_read) == ROWS
    assert {thread for _, thread in rows_read} == {"lambda-kinesis-producer-output"}
    # What each consumer batch did came back through its log line ("batch processed"), as from CloudWatch.
    assert summary.items_written == {name: len(items) for name, items in expected.tables.items()}
    assert_exact(clients, path)


def test_run_runs_the_functions_as_lambda_does_by_default(tmp_path: Path) -> None:
    """`tripstream run` without --in-process: the embedded emulator enforcing IAM, the functions isolated."""
    path = trips_file(tmp_path / "taxi_trips.csv", 120, seed=5)
    result = run_cli("run", str(path), "--no-progress", env={"TRIPSTREAM_IN_PROCESS": "0"}, isolated=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "records consumed 120 (rejected 0)" in result.stdout
