"""Lambda events in exactly the shapes AWS delivers them (S3 ObjectCreated, Kinesis batch).

The test fixtures in tests/fixtures/events hold real events from the AWS documentation; the tests check that
these builders produce the same structure.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus


def s3_object_created_event(
    *,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    region: str,
    account_id: str,
    sequencer: str,
    event_name: str = "ObjectCreated:Put",
) -> dict[str, Any]:
    """One S3 notification record, as S3 sends it to Lambda (the key URL-encoded, the ETag unquoted)."""
    now = datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "eventName": event_name,
                "userIdentity": {"principalId": f"AWS:{account_id}"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "tripstream-local-runtime",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": account_id},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag.strip('"'),
                        "sequencer": sequencer,
                    },
                },
            }
        ]
    }


def kinesis_event(
    records: Sequence[dict[str, Any]],
    *,
    shard_id: str,
    stream_arn: str,
    region: str,
    role_arn: str,
) -> dict[str, Any]:
    """A Kinesis batch as Lambda's event source mapping delivers it; `records` are GetRecords records."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": _epoch(record.get("ApproximateArrivalTimestamp")),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role_arn,
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for record in records
        ]
    }


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    if isinstance(value, int | float):
        return float(value)
    return round(datetime.now(UTC).timestamp(), 3)
