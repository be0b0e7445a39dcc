"""The pipeline with its functions run as Lambda runs them (the deployment package in processes of their own,
through the Runtime API): every trip where the independent reference says, the consumer's figures read back from
its log lines, the continuations of a file followed."""

from __future__ import annotations

from pathlib import Path

from expected import expected_aggregates, expected_for
from support.trips import trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import item_count
from tripstream.infra.stack import deploy_for_local_runtime
from tripstream.local.commands.run import run_file

# Not a multiple of the 200 rows between deadline checks: a file of exactly k x 200 rows whose invocations each stop
# at a check resumes at its very end, and S3 refuses that range (InvalidRange): a producer bug, reported with issue 22.
ROWS = 650


def test_a_file_through_isolated_functions_lands_exactly(fresh_endpoint: str, tmp_path: Path) -> None:
    clients = AwsClients.create(endpoint_url=fresh_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    stack, _ = deploy_for_local_runtime(clients)
    path = trips_file(tmp_path / "taxi_trips.csv", ROWS, seed=22)
    expected = expected_for(path)
    notes: list[str] = []
    summary = run_file(
        clients,
        clients,
        stack,
        path,
        in_process=False,
        credentials=EMULATOR_CREDENTIALS,
        note=notes.append,
        # Every invocation stops at its first deadline check and continues in a follow-up invocation.
        environment_overrides={"DEADLINE_MARGIN_SECONDS": "1000000"},
    )
    assert summary.ok, summary
    assert summary.producer_invocations > 1  # continuations, followed by the local service
    assert summary.records_sent == ROWS and summary.records_consumed == ROWS
    # What each consumer batch did came back through its log line ("batch processed"), as from CloudWatch.
    assert summary.items_written == {name: len(items) for name, items in expected.tables.items()}
    for name, items in expected.tables.items():
        assert item_count(clients.dynamodb, name) == len(items)
    cells = expected_aggregates(path)
    assert item_count(clients.dynamodb, stack.stats_table) == len(cells)
