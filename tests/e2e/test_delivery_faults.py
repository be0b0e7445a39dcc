"""Nothing lost, nothing twice: generated trip files (tests/support/trips.py) through the whole local pipeline
(S3 event -> producer -> Kinesis -> event source mapping -> consumer -> DynamoDB) while the fault layer breaks
the real HTTP traffic, each fault alone and all together. Every table must hold exactly the expected items,
zone_hourly_stats every cell of tests/expected.py's recomputation (each trip once), and the summary's counts must
add up (read = sent + rejected; sent = processed).

`pytest -s` prints, for each run, the faults injected, the retries made and the trips lost and duplicated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from expected import expected_aggregates, expected_for  # tests/expected.py, the independent reference
from support.faults import FaultInjector, FaultPlan
from support.harness import ExpectedRun, expected_run, reset_pipeline, stream_records, table_contents
from support.trips import trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers import producer as producer_handler
from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime
from tripstream.local.commands.run import run_file
from tripstream.local.commands.run_summary import RunSummary
from tripstream.local.emulator.server import Emulator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Fast backoff for the tests; the bounds stay: 10 attempts per call.
FAST_RETRIES = {"RETRY_BASE_DELAY": "0.002", "RETRY_MAX_DELAY": "0.02", "RETRY_MAX_ATTEMPTS": "10"}
STACK_PARAMETERS = {"BatchSize": "100", "MaximumBatchingWindowInSeconds": "0"}


def sample(seed: int, tmp_path: Path, rows: int = 400, *, blank_line: bool = False) -> Path:
    """A generated trips file of `rows` rows (its own seed per test, so that the faults meet different data)."""
    return trips_file(tmp_path / f"trips-{seed}-{rows}.csv", rows, seed=seed, blank_line=blank_line)


@dataclass
class Pipeline:
    clients: AwsClients
    stack: DeployedStack
    endpoint_url: str
    service_endpoints: dict[str, str]

    def handler_clients(self) -> AwsClients:
        """Fresh clients for the handlers of one run (botocore retries off), for the faults to hook."""
        return AwsClients.create(
            endpoint_url=self.endpoint_url,
            region="us-east-1",
            credentials=EMULATOR_CREDENTIALS,
            max_attempts=1,
            service_endpoints=self.service_endpoints,
        )


@pytest.fixture(scope="module")
def deployed_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """This module's own emulator (nothing else resets it) and, per backend, the stack deployed in it."""
    levels = [(module.logger, module.logger.log_level) for module in (producer_handler, consumer_handler)]
    for logger, _ in levels:
        logger.setLevel("WARNING")  # a JSON line per batch is noise here
    try:
        with Emulator(log_path=tmp_path_factory.mktemp("emulator") / "emulator.log") as emulator:
            yield {"endpoint_url": emulator.endpoint_url}
    finally:
        for logger, level in levels:
            logger.setLevel(level)


def _pipeline(stacks: dict[str, Any], backend: str, request: pytest.FixtureRequest) -> Pipeline:
    if backend not in stacks:
        service_endpoints: dict[str, str] = {}
        if backend == "dynamodb-local":
            service_endpoints["dynamodb"] = request.getfixturevalue("dynamodb_local_endpoint")
        clients = AwsClients.create(
            endpoint_url=stacks["endpoint_url"],
            region="us-east-1",
            credentials=EMULATOR_CREDENTIALS,
            service_endpoints=service_endpoints,
        )
        stack, _ = deploy_for_local_runtime(clients, parameters=STACK_PARAMETERS)
        stacks[backend] = Pipeline(clients, stack, stacks["endpoint_url"], service_endpoints)
    pipeline: Pipeline = stacks[backend]
    reset_pipeline(pipeline.clients, pipeline.stack)
    return pipeline


@pytest.fixture
def pipeline_on(deployed_stacks: dict[str, Any], backend: str, request: pytest.FixtureRequest) -> Pipeline:
    """The stack with DynamoDB on `backend` (see tests/conftest.py), emptied."""
    return _pipeline(deployed_stacks, backend, request)


# ---------------------------------------------------------------- what a run must produce


@dataclass
class Outcome:
    lost: int
    duplicated: int
    wrong: int
    cells_wrong: int = 0  # zone_hourly_stats cells missing, extra or not equal to the recomputation


def cells_wrong(pipeline: Pipeline, *paths: Path) -> int:
    """zone_hourly_stats against tests/expected.py's recomputation from the CSV, cell by cell."""
    want = expected_aggregates(*paths)
    items = scan_all(pipeline.clients.dynamodb, pipeline.stack.aggregate_tables["zone_hourly_stats"])
    keys = ("pickup_location_id", "pickup_hour")
    got = {tuple(item[k] for k in keys): {k: v for k, v in item.items() if k not in keys} for item in items}
    return len(set(got) ^ set(want)) + sum(got[cell] != want[cell] for cell in set(got) & set(want))


def check_tables(pipeline: Pipeline, expected: ExpectedRun, path: Path) -> Outcome:
    """Every table holds exactly the expected items: none missing, none extra, each once, each as computed.

    The keys (and the analytics values) come from tests/expected.py, which reads the CSV without tripstream's
    code; the whole items from tripstream's pure functions on the same file, with no AWS call and no fault.
    """
    reference = expected_for(path).tables
    lost = duplicated = wrong = 0
    for name, items in table_contents(pipeline.clients, pipeline.stack).items():
        assert set(reference[name]) == set(expected.items[name]), f"the two expectations disagree on {name}"
        want = {
            trip_id: {k: v for k, v in item.items() if v is not None} for trip_id, item in expected.items[name].items()
        }
        got: dict[str, dict[str, Any]] = {}
        for item in items:
            duplicated += item["trip_id"] in got
            got[item["trip_id"]] = item
        lost += len(set(reference[name]) - set(got))
        wrong += len(set(got) - set(reference[name]))
        for trip_id in set(got) & set(reference[name]):
            values = reference[name][trip_id]
            if got[trip_id] != want[trip_id] or any(got[trip_id].get(k) != v for k, v in values.items()):
                wrong += 1
    return Outcome(lost, duplicated, wrong, cells_wrong(pipeline, path))


def check_run(
    pipeline: Pipeline,
    path: Path,
    summary: RunSummary,
    expected: ExpectedRun,
    faults: FaultInjector,
    label: str,
) -> Outcome:
    outcome = check_tables(pipeline, expected, path)
    counts = faults.counts
    stream_total = sum(len(r) for r in stream_records(pipeline.clients.kinesis, pipeline.stack.stream_name).values())
    resent = counts.records_stored_twice + summary.retries.get("producer_records_sent_by_failed_invocations", 0)
    consumer_rejected = sum(summary.records_rejected.values())
    print(
        f"\n[{label}] {summary.file.rsplit('/', 1)[-1]}: {summary.rows_read} rows read, "
        f"{summary.records_sent} sent, {sum(summary.rows_rejected.values())} rejected, "
        f"{summary.trips_processed} processed, {summary.producer_invocations} producer invocation(s), "
        f"{summary.consumer_invocations} consumer invocations"
        f"\n  injected: {injection_report(faults)}"
        f"\n  retries:  {retry_report(summary)}"
        f"\n  stream:   {stream_total} records ({resent} stored twice by lost answers or retried invocations)"
        f"\n  tables:   {summary.table_items}; trips lost {outcome.lost}, duplicated {outcome.duplicated}, "
        f"wrong {outcome.wrong}; zone_hourly_stats cells wrong {outcome.cells_wrong}"
    )
    assert (outcome.lost, outcome.duplicated, outcome.wrong, outcome.cells_wrong) == (0, 0, 0, 0)
    assert summary.ok and summary.records_to_on_failure == 0 and not summary.producer_errors_final
    assert summary.rows_read == expected.rows
    assert summary.records_sent == expected.records
    assert summary.rows_read == summary.records_sent + sum(summary.rows_rejected.values())  # read = sent + rejected
    # sent = processed (plus what the stream holds twice: a lost answer makes the producer send records again)
    assert summary.trips_processed + consumer_rejected == summary.records_sent + resent == stream_total
    assert summary.table_items == {name: len(items) for name, items in expected.items.items()}
    return outcome


def injection_report(faults: FaultInjector) -> str:
    c = faults.counts
    parts = {
        "PutRecords entries failed": sum(c.entries_failed.values()),
        "calls throttled": sum(c.calls_throttled.values()),
        "calls 5xx": sum(c.calls_server_error.values()),
        "connections reset": sum(c.connections_reset.values()),
        "answers lost": sum(c.responses_lost.values()),
        "items unprocessed": c.items_unprocessed,
        "consumer crashes": c.consumer_crashes,
        "transactions conflicted": c.transactions_conflicted,
    }
    share = (
        f" ({sum(c.entries_failed.values()) / max(1, c.put_records_entries):.1%} of {c.put_records_entries} entries, "
        f"{(sum(c.calls_throttled.values()) + sum(c.calls_server_error.values())) / max(1, c.put_records_calls + c.batch_write_calls):.1%} "  # noqa: E501
        f"of {c.put_records_calls + c.batch_write_calls} calls throttled/5xx, "
        f"{c.items_unprocessed / max(1, c.batch_write_items):.1%} of {c.batch_write_items} items unprocessed)"
    )
    return ", ".join(f"{name} {count}" for name, count in parts.items() if count) + share


def retry_report(summary: RunSummary) -> str:
    retries = {
        **summary.retries,
        "consumer_batches_redelivered": summary.consumer_retries,
    }
    return ", ".join(f"{name} {count}" for name, count in retries.items() if count) or "none"


def run(
    pipeline: Pipeline,
    path: Path,
    plan: FaultPlan,
    tmp_path: Path,
    *,
    key: str | None = None,
    environment: dict[str, str] | None = None,
) -> tuple[RunSummary, FaultInjector]:
    handler_clients = pipeline.handler_clients()
    faults = FaultInjector(plan).install(handler_clients)
    summary = run_file(
        pipeline.clients,
        handler_clients,
        pipeline.stack,
        path,
        key=key,
        state_dir=tmp_path / "state",
        environment_overrides={**FAST_RETRIES, **(environment or {})},
    )
    return summary, faults


# ---------------------------------------------------------------- each fault alone


SINGLE_FAULTS = {
    "PutRecords entries failed": ((101, 400, False), FaultPlan(seed=1, put_entry_failure=0.15)),
    "calls throttled or 5xx": (
        (102, 400, True),
        FaultPlan(seed=12, call_throttle=0.05, call_server_error=0.05),
    ),
    "items unprocessed": ((103, 400, False), FaultPlan(seed=3, unprocessed_items=0.25)),
    "connections reset": ((104, 400, False), FaultPlan(seed=4, connection_reset=0.15)),
    "consumer crashes mid-batch": ((105, 400, False), FaultPlan(seed=5, consumer_crash=0.1)),
    # Kinesis stored the records but the producer never heard: it sends them again (at-least-once).
    "PutRecords answers lost": (
        (106, 1200, False),  # several PutRecords calls, so that some answers are lost
        FaultPlan(seed=2, lost_response=0.5, operations=("PutRecords",)),
    ),
    # DynamoDB applied the writes (per-trip items, the aggregates' transactions) but the consumer got a reset or a
    # 500: it retries, the markers make the aggregates' retry add nothing.
    "DynamoDB answers lost": (
        (107, 800, False),
        FaultPlan(
            seed=6,
            lost_response=0.3,
            lost_response_answer="mixed",
            operations=("BatchWriteItem", "TransactWriteItems", "UpdateItem"),
        ),
    ),
    "transactions throttled or in conflict": (
        (108, 800, False),
        FaultPlan(seed=7, call_throttle=0.1, transaction_conflict=0.2, operations=("TransactWriteItems",)),
    ),
}


@pytest.mark.parametrize("fault", list(SINGLE_FAULTS))
def test_each_fault_alone(pipeline_on: Pipeline, tmp_path: Path, fault: str) -> None:
    (seed, rows, blank_line), plan = SINGLE_FAULTS[fault]
    path = sample(seed, tmp_path, rows, blank_line=blank_line)
    expected = expected_run(path)
    summary, faults = run(pipeline_on, path, plan, tmp_path)
    check_run(pipeline_on, path, summary, expected, faults, fault)
    assert faults.counts.total() > 0, "the fault never happened: the test proves nothing"
    if plan.lost_response and "PutRecords" in plan.operations:
        assert faults.counts.records_stored_twice > 0
    if plan.lost_response and "TransactWriteItems" in plan.operations:
        assert faults.counts.responses_lost.get("TransactWriteItems", 0) > 0


# ---------------------------------------------------------------- all together


HEAVY = FaultPlan(
    seed=2024,
    put_entry_failure=0.15,
    call_throttle=0.04,
    call_server_error=0.04,
    unprocessed_items=0.25,
    connection_reset=0.02,
    consumer_crash=0.01,
)


def test_all_faults_together_with_continuations(pipeline_on: Pipeline, tmp_path: Path, backend: str) -> None:
    """The heaviest run: every fault at once, and the producer continuing the file every 200 rows (its time
    "runs short" at each look at the clock), on each DynamoDB backend."""
    path = sample(107, tmp_path, rows=1500)
    expected = expected_run(path)
    summary, faults = run(pipeline_on, path, HEAVY, tmp_path, environment={"DEADLINE_MARGIN_SECONDS": "1000000"})
    check_run(pipeline_on, path, summary, expected, faults, f"all faults together, DynamoDB on {backend}")
    assert summary.producer_invocations == -(-expected.rows // 200)
    c = faults.counts
    # At least the shares the issue asks for, of all the traffic (retries included).
    assert sum(c.entries_failed.values()) >= 0.10 * c.put_records_entries
    calls_failed = sum(c.calls_throttled.values()) + sum(c.calls_server_error.values())
    assert calls_failed >= 0.05 * (c.put_records_calls + c.batch_write_calls)
    assert c.items_unprocessed >= 0.20 * c.batch_write_items
    assert sum(c.connections_reset.values()) > 0 and c.consumer_crashes > 0


# ---------------------------------------------------------------- the same file again


def test_duplicate_notifications_and_reuploads_write_nothing_twice(pipeline_on: Pipeline, tmp_path: Path) -> None:
    """S3 notifications are at-least-once and users upload a file again: the same object notified twice, and
    the same file under another key, leave exactly the items of one run (the stream holds every copy)."""
    path = sample(108, tmp_path, rows=300)
    expected = expected_run(path)
    plan = FaultPlan(seed=8, put_entry_failure=0.1, unprocessed_items=0.1)
    for key in ("in/trips.csv", "in/trips.csv", "again/trips-copy.csv"):
        summary, _ = run(pipeline_on, path, plan, tmp_path, key=key)
        # The mapping continues from its checkpoint: each run processes just its own records.
        assert summary.trips_processed == summary.records_sent == expected.records
        outcome = check_tables(pipeline_on, expected, path)
        assert (outcome.lost, outcome.duplicated, outcome.wrong, outcome.cells_wrong) == (0, 0, 0, 0)
        assert summary.table_items == {name: len(items) for name, items in expected.items.items()}
    stream_total = sum(
        len(r) for r in stream_records(pipeline_on.clients.kinesis, pipeline_on.stack.stream_name).values()
    )
    assert stream_total == 3 * expected.records
