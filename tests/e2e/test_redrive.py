"""`redrive` after real failures: a consumer that crashes on every write until its batches reach the on-failure
queue, a producer whose every record is refused until its event reaches the dead-letter queue (both made to fail by
the fault layer, on the real HTTP traffic to the emulator), then `redrive`: the tables and the zone_hourly_stats
cells equal tests/expected.py's independent recomputation of both files, every marker expires, and a second
`redrive` finds nothing to do. `--dry-run` before it changes nothing.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from expected import expected_aggregates, expected_for  # tests/expected.py, the independent reference
from support.faults import FaultInjector, FaultPlan
from support.trips import trips_file
from tripstream.aws.aggregates import CELL_KEYS, MARKER_EXPIRY_ATTRIBUTE
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.aws.sqs import queue_counts
from tripstream.cli import main
from tripstream.infra.deploy import format_status, status
from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime
from tripstream.infra.template import DEFAULT_STACK_NAME
from tripstream.local.commands.redrive import redrive_stack
from tripstream.local.commands.run import run_file
from tripstream.pipeline.redrive import DEAD_LETTER, ON_FAILURE, REDRIVEN, WOULD_REDRIVE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAST_RETRIES = {"RETRY_BASE_DELAY": "0.002", "RETRY_MAX_DELAY": "0.01", "RETRY_MAX_ATTEMPTS": "3"}
# No retry of a failed batch: it goes to the on-failure queue at once (one message per batch of 100).
STACK_PARAMETERS = {"BatchSize": "100", "MaximumBatchingWindowInSeconds": "0", "MaximumRetryAttempts": "0"}


def _clients(endpoint: str, **options: Any) -> AwsClients:
    return AwsClients.create(endpoint_url=endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS, **options)


def _depths(clients: AwsClients, stack: DeployedStack) -> dict[str, int]:
    return {
        name: queue_counts(clients.sqs, stack.outputs[key]).visible
        for name, key in ((ON_FAILURE, "OnFailureQueueUrl"), (DEAD_LETTER, "ProducerDeadLetterQueueUrl"))
    }


def _tables(clients: AwsClients, stack: DeployedStack) -> dict[str, list[dict[str, Any]]]:
    return {name: scan_all(clients.dynamodb, table) for name, table in stack.tables.items()}


def _check_against_reference(clients: AwsClients, stack: DeployedStack, *paths: Path) -> None:
    references = [expected_for(path).tables for path in paths]
    for name, items in _tables(clients, stack).items():
        want = {trip_id: values for reference in references for trip_id, values in reference[name].items()}
        got_ids = [item["trip_id"] for item in items]
        assert len(got_ids) == len(set(got_ids)), f"{name}: a trip twice"
        assert set(got_ids) == set(want), (
            f"{name}: {len(set(want) - set(got_ids))} missing, extra {len(set(got_ids) - set(want))}"
        )
        for item in items:
            wrong = {k: (item.get(k), v) for k, v in want[item["trip_id"]].items() if item.get(k) != v}
            assert not wrong, f"{name} {item['trip_id']}: {wrong}"
    cells = {
        tuple(item[k] for k in CELL_KEYS): {k: v for k, v in item.items() if k not in CELL_KEYS}
        for item in scan_all(clients.dynamodb, stack.aggregate_tables["zone_hourly_stats"])
    }
    want_cells = expected_aggregates(*paths)
    assert set(cells) == set(want_cells), "cells missing or extra"
    assert {cell: cells[cell] for cell in want_cells if cells[cell] != want_cells[cell]} == {}
    markers = scan_all(clients.dynamodb, stack.aggregate_tables["zone_hourly_counted_trips"])
    assert len(markers) == sum(int(cell["trips"]) for cell in want_cells.values())
    window, now = int(stack.parameters["CountedTripsTtlDays"]) * 86_400, time.time()
    assert all(isinstance(m[MARKER_EXPIRY_ATTRIBUTE], Decimal) for m in markers)  # a Number
    assert all(now - 600 < int(m[MARKER_EXPIRY_ATTRIBUTE]) - window <= now for m in markers)


def test_redrive_after_a_failing_consumer_and_producer(fresh_endpoint: str, tmp_path: Path) -> None:
    clients = _clients(fresh_endpoint)
    stack, _ = deploy_for_local_runtime(clients, parameters=STACK_PARAMETERS)
    consumed_file = trips_file(tmp_path / "consumer-fails.csv", 300, seed=241)
    produced_file = trips_file(tmp_path / "producer-fails.csv", 200, seed=242)

    # 1. Every PutRecords entry of the producer fails: it gives up, its S3 event goes to the dead-letter queue.
    handler_clients = _clients(fresh_endpoint, max_attempts=1)
    FaultInjector(FaultPlan(seed=25, put_entry_failure=1.0)).install(handler_clients)
    summary = run_file(clients, handler_clients, stack, produced_file, environment_overrides=FAST_RETRIES)
    assert summary.producer_errors_final and summary.producer_dead_letter_message_id

    # 2. The consumer crashes in every BatchWriteItem (the aggregates, written beside, may count part of a batch):
    # every batch goes to the on-failure queue. (After step 1: this run's mapping reads the stream from its start.)
    handler_clients = _clients(fresh_endpoint, max_attempts=1)
    FaultInjector(FaultPlan(seed=24, consumer_crash=1.0)).install(handler_clients)
    summary = run_file(clients, handler_clients, stack, consumed_file, environment_overrides=FAST_RETRIES)
    assert summary.records_sent == expected_for(consumed_file).rows
    assert summary.records_to_on_failure == summary.records_sent  # every batch given up on
    depths = _depths(clients, stack)
    assert depths[DEAD_LETTER] == 1 and depths[ON_FAILURE] >= 3  # batches of at most 100, on 2 shards
    before = _tables(clients, stack)
    assert before == {name: [] for name in stack.tables}  # nothing of either file reached the tables
    # `status` shows both queues: their depth and the oldest message's age (a peek leaves them visible).
    queues = status(clients).queues
    assert {label: q["messages"] for label, q in queues.items()} == depths
    assert all(0 <= q["oldest_age_seconds"] < 300 for q in queues.values())
    assert _depths(clients, stack) == depths

    # 3. --dry-run lists all of it and changes nothing.
    runner = CliRunner()
    dry = runner.invoke(main, ["redrive", "--endpoint-url", fresh_endpoint, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    listed = orjson.loads(dry.stdout)
    assert [o["action"] for o in listed["outcomes"]] == [WOULD_REDRIVE] * (depths[ON_FAILURE] + 1)
    ranges = [o for o in listed["outcomes"] if o["queue"] == ON_FAILURE]
    assert sum(o["records"] for o in ranges) == 300 and all(o["missing"] == 0 for o in ranges)
    assert {s for o in ranges for s in o["sources"]} == {f"s3://{stack.bucket}/consumer-fails.csv"}
    (event,) = [o for o in listed["outcomes"] if o["queue"] == DEAD_LETTER]
    assert event["sources"] == [f"s3://{stack.bucket}/producer-fails.csv"]
    assert _depths(clients, stack) == depths  # every message visible again at once
    assert _tables(clients, stack) == before

    # 4. redrive: every message's work done, every message deleted; the tables and cells are the reference.
    report, runner_kind = redrive_stack(clients, _clients(fresh_endpoint, max_attempts=1), DEFAULT_STACK_NAME)
    assert runner_kind == "in-process"
    assert [(o.queue, o.action, o.deleted) for o in report.outcomes] == [(ON_FAILURE, REDRIVEN, True)] * depths[
        ON_FAILURE
    ] + [(DEAD_LETTER, REDRIVEN, True)]
    assert report.ok and report.upload_again == []
    assert _depths(clients, stack) == {ON_FAILURE: 0, DEAD_LETTER: 0}
    assert "0 messages" in format_status(status(clients))
    _check_against_reference(clients, stack, consumed_file, produced_file)

    # 5. A second redrive finds nothing and changes nothing.
    after = _tables(clients, stack)
    again = runner.invoke(main, ["redrive", "--endpoint-url", fresh_endpoint])
    assert again.exit_code == 0, again.output
    assert "0 messages" in again.stdout
    assert _tables(clients, stack) == after
    _check_against_reference(clients, stack, consumed_file, produced_file)
