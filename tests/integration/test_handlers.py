"""Each Lambda handler against the emulator over HTTP, with the real template deployed."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.dynamodb import scan_all
from tripstream.aws.kinesis import iter_stream_records
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers import producer as producer_handler
from tripstream.handlers.dependencies import Dependencies
from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime
from tripstream.local.lambda_service.context import LocalLambdaContext
from tripstream.local.lambda_service.functions import handler_settings

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
HEADER = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,trip_distance,fare_amount,total_amount,PULocationID\n"
ROWS = [
    "1,2019-01-01 00:00:00,2019-01-01 00:05:00,1.00,6.00,7.30,161",  # short, not high value
    "2,2019-01-01 10:00:00,2019-01-01 10:45:00,18.20,52.00,70.15,132",  # long, high value
    "1,2019-01-01 11:00:00,2019-01-01 10:59:00,0,0,0,48",  # dropoff before pickup, no distance: no table
    "1,not a time,2019-01-01 10:59:00,1,1,1,48",  # rejected
]


@pytest.fixture
def deployed(fresh_endpoint: str) -> tuple[AwsClients, DeployedStack]:
    clients = AwsClients.create(endpoint_url=fresh_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    stack, _ = deploy_for_local_runtime(clients)
    return clients, stack


def context(stack: DeployedStack, *, consumer: bool = False) -> LocalLambdaContext:
    function = stack.consumer if consumer else stack.producer
    return LocalLambdaContext(function_name=function.name, invoked_function_arn=function.arn)


def s3_event(clients: AwsClients, bucket: str, key: str) -> dict[str, Any]:
    """The documented S3 event, pointed at a real object (S3 sends the key URL-encoded, the ETag bare)."""
    event: dict[str, Any] = json.loads((FIXTURES / "s3_put.json").read_text())
    head = clients.s3.head_object(Bucket=bucket, Key=key)
    event["Records"][0]["s3"]["bucket"]["name"] = bucket
    event["Records"][0]["s3"]["object"].update(
        key=key.replace(" ", "+"), size=head["ContentLength"], eTag=head["ETag"].strip('"')
    )
    return event


def test_producer_handler_sends_every_good_row_and_keeps_the_bad_one(
    deployed: tuple[AwsClients, DeployedStack],
) -> None:
    clients, stack = deployed
    clients.s3.put_object(Bucket=stack.bucket, Key="in/my trips.csv", Body=(HEADER + "\n".join(ROWS) + "\n").encode())
    deps = Dependencies(clients, handler_settings(stack.producer))
    response = producer_handler.make_handler(lambda: deps)(
        s3_event(clients, stack.bucket, "in/my trips.csv"), context(stack)
    )

    (result,) = response["results"]
    assert (result["rows_read"], result["records_sent"], result["rows_rejected"]) == (4, 3, {"invalid_timestamp": 1})
    records = list(iter_stream_records(clients.kinesis, stack.stream_name))
    trips = [orjson.loads(record["Data"]) for record in records]
    assert sorted(trip["source"]["row"] for trip in trips) == [2, 3, 4]
    assert all(record["PartitionKey"] == orjson.loads(record["Data"])["trip_id"] for record in records)
    (reject_key,) = result["rejects_keys"]
    (reject,) = [
        json.loads(line) for line in clients.s3.get_object(Bucket=stack.bucket, Key=reject_key)["Body"].iter_lines()
    ]
    assert (reject["line"], reject["reason"], reject["column"]) == (5, "invalid_timestamp", "tpep_pickup_datetime")


def test_consumer_handler_writes_the_tables_and_reports_no_failure(deployed: tuple[AwsClients, DeployedStack]) -> None:
    clients, stack = deployed
    clients.s3.put_object(Bucket=stack.bucket, Key="t.csv", Body=(HEADER + "\n".join(ROWS[:3]) + "\n").encode())
    producer_deps = Dependencies(clients, handler_settings(stack.producer))
    producer_handler.make_handler(lambda: producer_deps)(s3_event(clients, stack.bucket, "t.csv"), context(stack))
    records = list(iter_stream_records(clients.kinesis, stack.stream_name))
    event: dict[str, Any] = json.loads((FIXTURES / "kinesis_batch.json").read_text())
    template = event["Records"][0]
    event["Records"] = [
        {
            **template,
            "kinesis": {
                **template["kinesis"],
                "data": base64.b64encode(record["Data"]).decode(),
                "sequenceNumber": record["SequenceNumber"],
                "partitionKey": record["PartitionKey"],
            },
        }
        for record in records
    ]
    consumer_deps = Dependencies(clients, handler_settings(stack.consumer))
    response = consumer_handler.make_handler(lambda: consumer_deps)(event, context(stack, consumer=True))

    assert response == {"batchItemFailures": []}
    high_value = scan_all(clients.dynamodb, stack.tables["high_value_trips"])
    durations = scan_all(clients.dynamodb, stack.tables["trip_duration_analysis"])
    ratios = scan_all(clients.dynamodb, stack.tables["distance_to_fare_ratio"])
    assert [item["total_amount"] for item in high_value] == [Decimal("70.15")]
    assert sorted((i["duration_minutes"], i["duration_category"]) for i in durations) == [
        (Decimal(5), "short"),
        (Decimal(45), "long"),
    ]
    assert sorted(item["fare_per_mile"] for item in ratios) == [Decimal("2.86"), Decimal(6)]


def test_an_event_for_an_object_replaced_since_sends_nothing(deployed: tuple[AwsClients, DeployedStack]) -> None:
    """S3 notifications arrive late and twice: the event of an overwritten object must not send the new
    content under the old event (the new upload's own event does), nor fail and be retried for nothing."""
    clients, stack = deployed
    body = HEADER + ROWS[0] + "\n"
    clients.s3.put_object(Bucket=stack.bucket, Key="late.csv", Body=body.encode())
    stale_event = s3_event(clients, stack.bucket, "late.csv")
    clients.s3.put_object(Bucket=stack.bucket, Key="late.csv", Body=(body + ROWS[1] + "\n").encode())
    deps = Dependencies(clients, handler_settings(stack.producer))
    handle = producer_handler.make_handler(lambda: deps)

    (stale,) = handle(stale_event, context(stack))["results"]
    assert stale["gone"] is not None and "replaced" in stale["gone"]
    assert (stale["rows_read"], stale["records_sent"]) == (0, 0)
    assert list(iter_stream_records(clients.kinesis, stack.stream_name)) == []

    (current,) = handle(s3_event(clients, stack.bucket, "late.csv"), context(stack))["results"]
    assert (current["gone"], current["records_sent"]) == (None, 2)
    clients.s3.delete_object(Bucket=stack.bucket, Key="late.csv")
    (deleted,) = handle(stale_event, context(stack))["results"]
    assert deleted["gone"] == "deleted since the event"
