"""zone_hourly_stats counts every accepted trip exactly once, on both DynamoDB backends, whatever is repeated:
the same record delivered twice, two records for one trip, a batch retried whole or bisected, answers lost after
the write was applied, throttles, UnprocessedItems and TransactionConflict, a second upload of the same file.

The consumer runs as Lambda runs it (records in, batchItemFailures out, the rest delivered again) over real HTTP;
the fault layer breaks that traffic. The cells must equal tests/expected.py's recomputation from the CSV (which
imports nothing of tripstream), and the per-trip tables their expected items.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from expected import expected_aggregates, expected_for
from support.faults import FaultInjector, FaultPlan
from support.harness import ScratchResources, create_scratch_resources
from tripstream.aws.aggregates import MARKER_EXPIRY_ATTRIBUTE
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.pipeline.aggregates_rebuild import rebuild_aggregates
from tripstream.pipeline.consumer import ConsumerResult, StreamRecord, consume_records
from tripstream.trips.generate import write_sample
from tripstream.trips.normalise import RowError, TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.records import encode_trip

pytestmark = [pytest.mark.integration]

CELL_KEYS = ("pickup_location_id", "pickup_hour")


@dataclass
class Setup:
    clients: AwsClients
    handler_clients: AwsClients
    scratch: ScratchResources
    sequence: int = 0
    results: list[ConsumerResult] = field(default_factory=list)

    def records(self, path: Path) -> list[StreamRecord]:
        """One record per accepted row of the file (as the producer sends them), fresh sequence numbers."""
        trip_file = open_trip_file(LocalFileSource(path))
        normaliser = TripNormaliser(trip_file.header, source_bucket="b", source_key=path.name)
        records: list[StreamRecord] = []
        for row in trip_file.rows():
            if row.fields is None or row.error is not None:
                continue
            try:
                trip = normaliser.normalise(row.fields, row.row_number)
            except RowError:
                continue
            records.append(self.record(encode_trip(trip), trip["trip_id"]))
        return records

    def record(self, data: bytes, key: str) -> StreamRecord:
        self.sequence += 1
        return StreamRecord(f"{self.sequence:021d}", "shardId-000000000000", data, key)

    def deliver(self, batch: list[StreamRecord], *, bisect: bool = False) -> None:
        """Deliver as Lambda does with ReportBatchItemFailures: from the first failed record again, until done
        (with `bisect`, a failed batch is also split in two and each half delivered, as on a function error)."""
        for _ in range(200):
            if not batch:
                return
            result = consume_records(
                self.handler_clients.dynamodb, self.handler_clients.s3, self.scratch.settings, batch
            )
            self.results.append(result)
            if result.first_failed_sequence is None:
                return
            start = next(i for i, r in enumerate(batch) if r.sequence_number == result.first_failed_sequence)
            batch = batch[start:]
            if bisect and len(batch) > 1:
                middle = len(batch) // 2
                self.deliver(batch[:middle])
                batch = batch[middle:]
        raise AssertionError("the batch never got through")

    def cells(self) -> dict[tuple[str, str], dict[str, Decimal]]:
        items = scan_all(self.clients.dynamodb, self.scratch.settings.zone_hourly_stats_table)
        return {
            (item["pickup_location_id"], item["pickup_hour"]): {k: v for k, v in item.items() if k not in CELL_KEYS}
            for item in items
        }

    def per_trip_tables(self) -> list[list[str]]:
        return [sorted(i["trip_id"] for i in scan_all(self.clients.dynamodb, t)) for t in self.scratch.tables]

    def check(self, *paths: Path) -> None:
        want = expected_aggregates(*paths)
        got = self.cells()
        assert set(got) == set(want), "cells missing or extra"
        wrong = {cell: (got[cell], want[cell]) for cell in want if got[cell] != want[cell]}
        assert not wrong, f"{len(wrong)} cells differ, e.g. {next(iter(wrong.items()))}"
        references = [expected_for(path).tables for path in paths]
        union = [
            sorted({trip_id for ref in references for trip_id in ref[name]})
            for name in ("high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio")
        ]
        assert self.per_trip_tables() == union
        markers = scan_all(self.clients.dynamodb, self.scratch.settings.counted_trips_table)
        assert len(markers) == sum(int(cell["trips"]) for cell in want.values())
        # Bounded state: every marker expires (epoch seconds, a Number) within the settings' window from now.
        window, now = self.scratch.settings.counted_trips_ttl_days * 86_400, time.time()
        assert all(now - 600 < int(m[MARKER_EXPIRY_ATTRIBUTE]) - window <= now for m in markers)

    def inject(self, **plan: Any) -> FaultInjector:
        return FaultInjector(FaultPlan(**plan)).install(self.handler_clients)


@pytest.fixture
def setup(backend: str, emulator_endpoint: str, aws_env: None, request: pytest.FixtureRequest) -> Iterator[Setup]:
    endpoints: dict[str, str] = {}
    if backend == "dynamodb-local":
        endpoints["dynamodb"] = request.getfixturevalue("dynamodb_local_endpoint")
    common: dict[str, Any] = {
        "endpoint_url": emulator_endpoint,
        "region": "us-east-1",
        "credentials": EMULATOR_CREDENTIALS,
        "service_endpoints": endpoints,
    }
    clients = AwsClients.create(**common)
    handler_clients = AwsClients.create(**common, max_attempts=1)
    scratch = create_scratch_resources(clients, f"agg-{uuid.uuid4().hex[:10]}", retry_max_attempts=12)
    yield Setup(clients, handler_clients, scratch)
    scratch.delete(clients)


@pytest.fixture
def trips_file(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "trips.csv", 300, seed=7)


def batches(records: list[StreamRecord], size: int = 100) -> list[list[StreamRecord]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def test_each_trip_counts_once_under_repetition(setup: Setup, trips_file: Path) -> None:
    """Each record twice in its batch, two records for one trip, batches delivered twice, a second upload."""
    records = setup.records(trips_file)
    for batch in batches(records):
        doubled = [r for record in batch for r in (record, record)]
        setup.deliver(doubled)
        setup.deliver(batch)  # re-delivered whole
        # Two records for one trip: a producer retry after a lost PutRecords answer (new sequence numbers).
        setup.deliver([setup.record(r.data or b"", r.partition_key) for r in batch[:10]])
    setup.deliver(setup.records(trips_file))  # the same file uploaded again
    setup.check(trips_file)
    counted = sum(r.aggregates.trips_counted for r in setup.results)
    # Tokens are scoped to an invocation: a re-delivery is stopped by the markers, never answered from DynamoDB's
    # token cache (which would also report the trips as counted), on either backend.
    assert counted == len({r.partition_key for r in records})
    assert sum(r.aggregates.already_counted for r in setup.results) > 0


@pytest.mark.parametrize("answer", ["reset", "500"])
def test_lost_responses(setup: Setup, trips_file: Path, answer: str) -> None:
    """Writes applied whose answers never arrive (TransactWriteItems, BatchWriteItem): retried, counted once."""
    faults = setup.inject(
        seed=3,
        lost_response=0.4,
        lost_response_answer=answer,
        operations=("TransactWriteItems", "BatchWriteItem", "UpdateItem"),
    )
    # Batches of 10: some 30 transactions, so the 40 % draw loses the answer of at least one of them (with batches
    # of 100, a run whose handful of transactions were all answered happened: 0.6^7, about 3 % of runs).
    for batch in batches(setup.records(trips_file), 10):
        setup.deliver(batch)
    setup.check(trips_file)
    assert faults.counts.responses_lost.get("TransactWriteItems", 0) > 0


def test_a_transaction_answered_in_progress_after_it_was_applied(setup: Setup, trips_file: Path) -> None:
    """TransactionInProgressException (a retry that overtook its first attempt) is waited out and asked again;
    the transaction was applied, so the retry adds nothing (token or markers), and nothing is lost."""
    faults = setup.inject(seed=5, transaction_in_progress=0.3, operations=("TransactWriteItems",))
    # Batches of 10 (some 30 transactions): with batches of 100 a run where the 30 % draw never hit happened (~8 %).
    for batch in batches(setup.records(trips_file), 10):
        setup.deliver(batch)
    setup.check(trips_file)
    assert faults.counts.transactions_in_progress > 0
    assert all(r.first_failed_sequence is None for r in setup.results)
    assert sum(r.aggregates.calls_retried for r in setup.results) > 0


def test_throttles_conflicts_unprocessed_and_bisect(setup: Setup, trips_file: Path) -> None:
    faults = setup.inject(
        seed=11,
        call_throttle=0.15,
        call_server_error=0.1,
        connection_reset=0.05,
        lost_response=0.1,
        lost_response_answer="mixed",
        transaction_conflict=0.2,
        unprocessed_items=0.2,
        operations=("TransactWriteItems", "BatchWriteItem"),
    )
    for batch in batches(setup.records(trips_file), 50):
        setup.deliver(batch, bisect=True)
    setup.deliver(setup.records(trips_file), bisect=True)  # and the file again
    setup.check(trips_file)
    counts = faults.counts
    assert counts.transactions_conflicted > 0 and sum(counts.calls_throttled.values()) > 0
    assert sum(r.aggregates.calls_retried for r in setup.results) > 0


def test_uncounted_trips_go_back_to_lambda(setup: Setup, trips_file: Path) -> None:
    """Every transaction throttled past the retry budget: the batch is reported from its first record."""
    setup.scratch = ScratchResources(
        setup.scratch.name,
        setup.scratch.tables,
        setup.scratch.settings.with_changes(retry_max_attempts=2),
        setup.scratch.aggregate_tables,
    )
    injector = setup.inject(seed=1, call_throttle=1.0, operations=("TransactWriteItems",))
    batch = setup.records(trips_file)[:20]
    result = consume_records(setup.handler_clients.dynamodb, setup.handler_clients.s3, setup.scratch.settings, batch)
    assert result.first_failed_sequence == batch[0].sequence_number
    assert setup.cells() == {}
    injector.uninstall(setup.handler_clients)
    setup.deliver(batch)
    assert sum(int(cell["trips"]) for cell in setup.cells().values()) == len({r.partition_key for r in batch})


def test_rebuild_recomputes_the_same_cells_twice(setup: Setup, trips_file: Path) -> None:
    """`aggregates rebuild` from the per-trip tables: equal to the live cells for every trip in some table."""
    for batch in batches(setup.records(trips_file)):
        setup.deliver(batch)
    live = setup.cells()
    settings = setup.scratch.settings
    first = rebuild_aggregates(setup.clients.dynamodb, settings)
    rebuilt = setup.cells()
    second = rebuild_aggregates(setup.clients.dynamodb, settings)
    assert setup.cells() == rebuilt
    assert first.trips == second.trips and first.cells == second.cells
    # Only trips in none of the three tables (no duration, not high-value, no fare ratio) are not recovered.
    reference = expected_for(trips_file)
    unrecoverable = set(reference.trips) - set().union(*(set(t) for t in reference.tables.values()))
    assert first.trips == len(reference.trips) - len(unrecoverable)
    if not unrecoverable:
        assert rebuilt == live
