"""DynamoDB's write bodies written with orjson are the JSON botocore writes (tripstream.aws.json_bodies)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from support.trips import canonical_trips, trips_file
from tripstream.aws.aggregates import AggregateTables, _actions, plan_transactions, request_token
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import to_item
from tripstream.aws.json_bodies import write_bodies_with_orjson
from tripstream.trips.analytics import classify
from tripstream.trips.thresholds import Thresholds

_URL = "http://127.0.0.1:9"  # nothing is sent: the requests are only built


def _botocore_client(*, validate: bool = False) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=_URL,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(parameter_validation=validate),
    )


def _built(client: Any, operation: str, parameters: dict[str, Any]) -> dict[str, Any]:
    model = client.meta.service_model.operation_model(operation)
    return client._serializer.serialize_to_request(parameters, model)  # type: ignore[no-any-return]


def _consumer_requests(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """A BatchWriteItem and a TransactWriteItems as the consumer builds them from generated trips."""
    items: list[dict[str, Any]] = []
    for trip in canonical_trips(trips_file(tmp_path / "trips.csv", 40)):
        classified = classify(trip, Thresholds())  # type: ignore[arg-type]
        items.extend(to_item(item) for item in (classified.high_value, classified.fare_ratio) if item is not None)
    cells = {("132", "2024-01-05T10"): {"t1": {"trips": Decimal(1), "total_amount": Decimal("52.10")}}}
    parts = plan_transactions(cells)[0]
    actions = _actions(AggregateTables("zone_hourly_stats", "zone_hourly_counted_trips"), parts, 1_900_000_000)
    return {
        "BatchWriteItem": {"RequestItems": {"trip_duration_analysis": [{"PutRequest": {"Item": i}} for i in items]}},
        "TransactWriteItems": {"TransactItems": actions, "ClientRequestToken": request_token(actions)},
    }


def test_the_consumer_s_writes_serialize_to_botocore_s_json(tmp_path: Path) -> None:
    plain, fast = _botocore_client(), _botocore_client()
    assert write_bodies_with_orjson(fast)
    for operation, parameters in _consumer_requests(tmp_path).items():
        expected, written = _built(plain, operation, parameters), _built(fast, operation, parameters)
        assert json.loads(written.pop("body")) == json.loads(expected.pop("body"))
        assert written == expected  # method, URL, headers (X-Amz-Target, Content-Type)


def test_a_body_with_bytes_is_botocore_s_own() -> None:
    plain, fast = _botocore_client(), _botocore_client()
    write_bodies_with_orjson(fast)
    parameters = {"RequestItems": {"t": [{"PutRequest": {"Item": {"k": {"S": "a"}, "raw": {"B": b"\x00\xff"}}}}]}}
    written = _built(fast, "BatchWriteItem", parameters)
    assert written == _built(plain, "BatchWriteItem", parameters)
    assert json.loads(written["body"])["RequestItems"]["t"][0]["PutRequest"]["Item"]["raw"] == {"B": "AP8="}


def test_other_operations_are_botocore_s_own() -> None:
    fast = _botocore_client()
    write_bodies_with_orjson(fast)
    parameters = {"TableName": "t", "Key": {"k": {"S": "a"}}}
    assert _built(fast, "GetItem", parameters)["body"] == json.dumps(parameters).encode()


def test_not_installed_when_botocore_serializes_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _botocore_client()
    original = client._serializer

    class Reshaped:  # a botocore that writes these bodies otherwise than json.dumps of the parameters
        def serialize_to_request(self, parameters: Any, model: Any) -> dict[str, Any]:
            request: dict[str, Any] = original.serialize_to_request(parameters, model)
            request["body"] = json.dumps({"Input": json.loads(request["body"] or b"{}")}).encode()
            return request

    client._serializer = Reshaped()
    assert not write_bodies_with_orjson(client)
    assert isinstance(client._serializer, Reshaped)


def test_not_installed_on_a_client_that_validates_its_parameters() -> None:
    """Validation is of the whole request: a client that validates keeps botocore's serializer."""
    client = _botocore_client(validate=True)
    assert not write_bodies_with_orjson(client)
    with pytest.raises(Exception, match="Missing required parameter"):
        _built(client, "BatchWriteItem", {})


def test_tripstream_s_clients_write_with_orjson() -> None:
    clients = AwsClients.create(endpoint_url=_URL, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    assert write_bodies_with_orjson(clients.dynamodb)  # already installed: idempotent
    assert type(clients.dynamodb._serializer).__name__ == "_OrjsonWrites"  # type: ignore[attr-defined]
