"""The local runtime's events have exactly the shape of the real ones (AWS documentation samples)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tripstream.handlers.consumer import records_from_event
from tripstream.handlers.producer import jobs_from_event
from tripstream.local.lambda_service.events import kinesis_event, s3_object_created_event
from tripstream.pipeline.consumer import StreamRecord

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"


def shape(value: Any) -> Any:
    """Keys and value types, recursively (values themselves differ between events)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "number" if isinstance(value, int | float) else type(value).__name__


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def test_s3_event_has_the_shape_s3_sends() -> None:
    event = s3_object_created_event(
        bucket="b", key="k.csv", size=10, etag='"abc"', region="us-east-1", account_id="1", sequencer="0A"
    )
    assert shape(event) == shape(fixture("s3_put.json"))


def test_kinesis_event_has_the_shape_lambda_delivers() -> None:
    records = [
        {
            "SequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "PartitionKey": "1",
            "Data": b"Hello, this is a test.",
            "ApproximateArrivalTimestamp": datetime(2018, 12, 17, 22, 10, 50, 987000, tzinfo=UTC),
        }
    ]
    event = kinesis_event(
        records,
        shard_id="shardId-000000000006",
        stream_arn="arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
        region="us-east-2",
        role_arn="arn:aws:iam::123456789012:role/lambda-role",
    )
    expected = fixture("kinesis_batch.json")
    assert shape(event) == shape(expected)
    assert event["Records"][0] == expected["Records"][0]


def test_producer_reads_every_record_of_an_s3_event_with_url_encoded_keys() -> None:
    event = fixture("s3_put.json")
    second = json.loads(json.dumps(event["Records"][0]))
    second["s3"]["object"]["key"] = "incoming/yellow+trips%282019%29.csv"
    event["Records"].append(second)
    jobs = jobs_from_event(event)
    assert [job["key"] for job in jobs] == ["b21b84d653bb07b05b1e6b33684dc11b", "incoming/yellow trips(2019).csv"]
    assert all(job["bucket"] == "DOC-EXAMPLE-BUCKET" for job in jobs)


def test_consumer_parses_the_documented_kinesis_batch() -> None:
    records = records_from_event(fixture("kinesis_batch.json"))
    assert records[0] == StreamRecord(
        sequence_number="49590338271490256608559692538361571095921575989136588898",
        shard_id="shardId-000000000006",
        data=base64.b64decode("SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg=="),
        partition_key="1",
    )
    assert len(records) == 2
