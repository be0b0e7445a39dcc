"""The HTTP pieces of the fault layer (support.faults): the operations, AWS's error answers word for word, a
request's body, a made-up answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Final

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders

PUT_RECORDS: Final = "PutRecords"
BATCH_WRITE_ITEM: Final = "BatchWriteItem"
TRANSACT_WRITE_ITEMS: Final = "TransactWriteItems"
UPDATE_ITEM: Final = "UpdateItem"
DYNAMODB_WRITES: Final = (BATCH_WRITE_ITEM, TRANSACT_WRITE_ITEMS, UPDATE_ITEM)
DYNAMODB_ERROR_PREFIX: Final = "com.amazonaws.dynamodb.v20120810#"

# (HTTP status, __type, message) of each whole-call fault, per operation; answers as AWS words them.
DYNAMODB_THROTTLES: Final = (
    (
        400,
        DYNAMODB_ERROR_PREFIX + "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    (400, DYNAMODB_ERROR_PREFIX + "ThrottlingException", "Throughput exceeds the current capacity of your table."),
)
DYNAMODB_5XX: Final = (
    (500, DYNAMODB_ERROR_PREFIX + "InternalServerError", "Internal server error"),
    (503, "ServiceUnavailable", "Service Unavailable"),
)
CALL_ERRORS: Final[Mapping[tuple[str, str], tuple[tuple[int, str, str], ...]]] = {
    (PUT_RECORDS, "throttle"): (
        (400, "ProvisionedThroughputExceededException", "Rate exceeded for stream {stream} under account {account}."),
    ),
    (PUT_RECORDS, "server_error"): (
        (500, "InternalFailure", "Internal service failure."),
        (503, "ServiceUnavailable", "Service Unavailable"),
    ),
    **{(operation, "throttle"): DYNAMODB_THROTTLES for operation in DYNAMODB_WRITES},
    **{(operation, "server_error"): DYNAMODB_5XX for operation in DYNAMODB_WRITES},
}
ENTRY_ERRORS: Final = (
    ("ProvisionedThroughputExceededException", "Rate exceeded for shard in stream {stream} under account {account}."),
    ("InternalFailure", "Internal service failure."),
)


DUPLICATE_KEYS: Final = "Provided list of item keys contains duplicates"


def has_duplicate_keys(requests: Mapping[str, list[dict[str, Any]]]) -> bool:
    """Whether one table gets two requests for one `trip_id` (the partition key, and the only key, of every table)."""
    for table_requests in requests.values():
        keys = [
            json.dumps(
                (r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key", {})).get("trip_id"),
                sort_keys=True,
            )
            for r in table_requests
        ]
        if len(set(keys)) < len(keys):
            return True
    return False


class Body:
    """The `raw` of an AWSResponse whose body is already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def body_bytes(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    if body is None:
        return b""
    data = body.read()
    body.seek(0)
    return data if isinstance(data, bytes) else str(data).encode()


def response(
    request: AWSPreparedRequest, status: int, document: Mapping[str, Any], headers: Mapping[str, str]
) -> AWSResponse:
    data = json.dumps(document).encode()
    content_type = str(request.headers.get("Content-Type") or "application/x-amz-json-1.0")
    answer_headers = {
        name: value
        for name, value in headers.items()
        if name.lower() not in ("content-length", "x-amz-crc32", "content-encoding", "transfer-encoding")
    }
    answer_headers.setdefault("Content-Type", content_type)
    answer_headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
    answer_headers["Content-Length"] = str(len(data))
    return AWSResponse(request.url, status, headers_of(answer_headers), Body(data))


def headers_of(values: Mapping[str, str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for name, value in values.items():
        headers[name] = value
    return headers
