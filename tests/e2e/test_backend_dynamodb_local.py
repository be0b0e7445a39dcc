"""The dynamodb-local backend end to end: the same file gives the same items as on moto, and what DynamoDB refuses
(and moto accepts) never reaches it from tripstream."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

import support.cli as support_cli
from support.trips import trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.infra.table_creation import ensure_tables, table_definitions
from tripstream.infra.template import load_template, resource_names, resources_of_type
from tripstream.local.emulator.dynamodb_local import DynamoDBLocal
from tripstream.pipeline.consumer import StreamRecord, consume_records
from tripstream.settings import Settings, SettingsError
from tripstream.trips.schema import SCHEMA_VERSION

pytestmark = pytest.mark.e2e

# Parity is about behaviour, not volume: a generated file of this many rows keeps the two runs quick.
PARITY_ROWS = 3000
# The per-trip tables (the aggregates have tests of their own).
TABLES = sorted(
    resource_names(load_template())[logical_id]
    for logical_id in resources_of_type(load_template(), "AWS::DynamoDB::Table")
    if logical_id in ("HighValueTripsTable", "TripDurationTable", "FareRatioTable")
)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return support_cli.run_cli(*args, env=env, timeout=900)


def _clients(endpoint_url: str, dynamodb_url: str | None = None) -> AwsClients:
    return AwsClients.create(
        endpoint_url=endpoint_url,
        region="us-east-1",
        credentials=EMULATOR_CREDENTIALS,
        service_endpoints={"dynamodb": dynamodb_url} if dynamodb_url else None,
    )


def _by_trip(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_trip = {item["trip_id"]: item for item in items}
    assert len(by_trip) == len(items)
    return by_trip


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.usefixtures("dynamodb_local_required")
def test_run_on_dynamodb_local_writes_exactly_what_moto_writes(fresh_endpoint: str, tmp_path: Path) -> None:
    sample = trips_file(tmp_path / "trips.csv", PARITY_ROWS, seed=2019)
    # moto: against the session emulator, so that its tables can be read after the run.
    on_moto = run_cli(
        "run", str(sample), "--endpoint-url", fresh_endpoint, "--state-dir", str(tmp_path / "m"), "--json"
    )
    assert on_moto.returncode == 0, on_moto.stderr
    # dynamodb-local: the embedded emulator for the rest, DynamoDB Local on disk, read again after the run.
    state = tmp_path / "state"
    on_local = run_cli("run", str(sample), "--backend", "dynamodb-local", "--state-dir", str(state), "--json")
    assert on_local.returncode == 0, on_local.stderr
    assert "DynamoDB Local" in on_local.stderr and "embedded emulator" in on_local.stderr

    moto_summary, local_summary = json.loads(on_moto.stdout), json.loads(on_local.stdout)
    for name in ("rows_read", "records_sent", "rows_rejected", "records_consumed", "records_rejected", "table_items"):
        assert local_summary[name] == moto_summary[name], name
    assert local_summary["records_to_on_failure"] == 0

    moto_dynamodb = _clients(fresh_endpoint).dynamodb
    with DynamoDBLocal(state_dir=state / "dynamodb-local") as server:
        local_dynamodb = _clients(fresh_endpoint, server.endpoint_url).dynamodb
        for table in [name for name in TABLES if name in moto_summary["table_items"]]:  # the summary's tables
            on_moto_items = _by_trip(scan_all(moto_dynamodb, table))
            on_local_items = _by_trip(scan_all(local_dynamodb, table))
            assert on_local_items.keys() == on_moto_items.keys(), table
            assert len(on_local_items) == moto_summary["table_items"][table] > 0
            # Numbers compare as Decimal: DynamoDB normalises them (52.50 is stored as 52.5), moto keeps the text.
            assert on_local_items == on_moto_items, table


# --- what DynamoDB refuses: fixed in tripstream, the same on both backends -----------------------


def _trip(number: int, **changes: Any) -> dict[str, Any]:
    trip: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "trip_id": f"parity-{number:04d}",
        "service": "yellow",
        "vendor_id": 2,
        "pickup_datetime": "2019-01-01T10:00:00",
        "dropoff_datetime": "2019-01-01T10:45:00",
        "passenger_count": 1,
        "trip_distance": 18.2,
        "fare_amount": 52.0,
        "tip_amount": 8.0,
        "total_amount": 70.15,
        "pickup_location_id": 132,
        "dropoff_location_id": 48,
    }
    trip.update(changes)
    return trip


def _records(trips: list[dict[str, Any]]) -> list[StreamRecord]:
    return [
        StreamRecord(
            sequence_number=f"{49590338271490256608559692538361571095921575989136588898 + index}",
            shard_id="shardId-000000000000",
            data=orjson.dumps(trip),
            partition_key=trip.get("trip_id", ""),
        )
        for index, trip in enumerate(trips)
    ]


@pytest.fixture
def consumer_clients(backend: str, fresh_backend_endpoint: Any, fresh_endpoint: str) -> AwsClients:
    """Clients as the consumer gets them on `backend`: the tables made from the template, a bucket for rejects."""
    dynamodb_url = fresh_backend_endpoint.dynamodb_url if backend == "dynamodb-local" else None
    clients = AwsClients.create(
        endpoint_url=fresh_endpoint,
        region="us-east-1",
        credentials=EMULATOR_CREDENTIALS,
        max_attempts=1,
        service_endpoints={"dynamodb": dynamodb_url} if dynamodb_url else None,
    )
    ensure_tables(clients.dynamodb, table_definitions(load_template()))
    clients.s3.create_bucket(Bucket="parity-rejects")
    return clients


def test_more_than_25_items_and_repeated_trips_in_one_batch_are_written(consumer_clients: AwsClients) -> None:
    """180 items in one invocation (BatchWriteItem takes 25), a trip twice (a call refuses a key twice)."""
    trips = [_trip(number) for number in range(60)]
    trips.insert(30, _trip(7))
    result = consume_records(
        consumer_clients.dynamodb,
        consumer_clients.s3,
        Settings(rejects_bucket="parity-rejects"),
        _records(trips),
    )
    assert result.first_failed_sequence is None
    assert result.trips_processed == 61
    assert result.records_rejected == {}
    for table in TABLES:
        assert len(scan_all(consumer_clients.dynamodb, table)) == 60, table


@pytest.mark.parametrize(
    "changes",
    [
        {"pickup_longitude": 1e-300},  # below DynamoDB's smallest magnitude (1E-130)
        {"tip_amount": 1e200},  # above its largest (9.99E+125)
        {"pickup_latitude": -1e130},
    ],
    ids=["underflow", "overflow", "negative-overflow"],
)
def test_a_number_dynamodb_cannot_store_rejects_its_record_not_the_batch(
    consumer_clients: AwsClients, changes: dict[str, Any]
) -> None:
    trips = [_trip(number) for number in range(30)]
    trips[12] = _trip(12, **changes)
    result = consume_records(
        consumer_clients.dynamodb,
        consumer_clients.s3,
        Settings(rejects_bucket="parity-rejects"),
        _records(trips),
    )
    assert result.first_failed_sequence is None  # nothing for Lambda to retry: retrying cannot fix it
    assert result.records_rejected == {"invalid_record": 1}
    assert result.trips_processed == 29
    high_value = {item["trip_id"]: item for item in scan_all(consumer_clients.dynamodb, "high_value_trips")}
    assert len(high_value) == 29 and "parity-0012" not in high_value
    assert high_value["parity-0013"]["total_amount"] == Decimal("70.15")


@pytest.mark.parametrize("value", ["50.0000000000000000000000000000000000001", "1e-131", "1e126"])
def test_a_threshold_dynamodb_cannot_store_is_refused_when_configured(value: str) -> None:
    """The high-value threshold goes into every high_value_trips item: 39 digits pass on moto and fail every batch
    on DynamoDB, so the settings refuse it up front."""
    with pytest.raises(SettingsError, match="DynamoDB can store"):
        Settings.from_env({"HIGH_VALUE_THRESHOLD": value})
