"""The bodies of DynamoDB's write requests written with orjson, not by botocore walking the input shape.

botocore's JSON serializer visits every value of a request along its botocore shape, one Python call per attribute
value, and then ``json.dumps`` the result: a fifth of the consumer's CPU under the pipeline (py-spy, 50,000 trips).
For BatchWriteItem and TransactWriteItems the shape changes nothing but blobs (``B``/``BS`` values: bytes to base64
text): a request without bytes serializes to ``json.dumps`` of its parameters. :func:`write_bodies_with_orjson`
wraps a DynamoDB client's serializer so that such requests are written by ``orjson.dumps`` (the same JSON, compact);
a request holding bytes (or anything else orjson does not write as JSON) goes through botocore's own path.

It is installed only after checking, on a request of the shapes the consumer sends, that both ways give the same
JSON and the same method, URL and headers; if this botocore is shaped otherwise it is not installed. A client that
validates its parameters (botocore's validation wraps the serializer) is left as it is: tripstream's data-plane
clients do not (the service validates every request).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import orjson

from tripstream.aws.shortcuts import install_where_botocore_agrees

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITE_OPERATIONS: Final = frozenset({"BatchWriteItem", "TransactWriteItems"})
_SAMPLES: Final = {
    "BatchWriteItem": {
        "RequestItems": {
            "t": [{"PutRequest": {"Item": {"k": {"S": "é"}, "n": {"N": "1.5"}, "b": {"BOOL": True}}}}],
        }
    },
    "TransactWriteItems": {
        "TransactItems": [
            {"Put": {"TableName": "m", "Item": {"k": {"S": "x"}}, "ConditionExpression": "attribute_not_exists(k)"}},
            {
                "Update": {
                    "TableName": "c",
                    "Key": {"h": {"S": "1"}, "r": {"S": "2"}},
                    "UpdateExpression": "ADD #a0 :a0",
                    "ExpressionAttributeNames": {"#a0": "trips"},
                    "ExpressionAttributeValues": {":a0": {"N": "2"}},
                }
            },
        ],
        "ClientRequestToken": "0" * 36,
    },
}


class _OrjsonWrites:
    """botocore's serializer for one client, with the write operations' plain bodies written by orjson."""

    def __init__(self, botocore_serializer: Any) -> None:
        self._botocore = botocore_serializer

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> dict[str, Any]:
        if operation_model.name in WRITE_OPERATIONS:
            try:
                body = orjson.dumps(parameters)
            except TypeError:  # bytes (a blob) or a value JSON has no type for: botocore knows what to do
                pass
            else:
                request: dict[str, Any] = self._botocore.serialize_to_request({}, operation_model)
                request["body"] = body
                return request
        return self._botocore.serialize_to_request(parameters, operation_model)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._botocore, name)


def _same_request(botocore_serializer: Any, client: Any) -> bool:
    orjson_writes = _OrjsonWrites(botocore_serializer)
    for operation, parameters in _SAMPLES.items():
        model = client.meta.service_model.operation_model(operation)
        expected = botocore_serializer.serialize_to_request(parameters, model)
        written = orjson_writes.serialize_to_request(parameters, model)
        if json.loads(expected.pop("body")) != json.loads(written.pop("body")) or expected != written:
            return False
    return True


def write_bodies_with_orjson(client: DynamoDBClient) -> bool:
    """Write the plain bodies of `client`'s BatchWriteItem and TransactWriteItems requests with orjson (idempotent).
    False, the client unchanged, when this botocore does not serialize them as expected."""
    serializer = getattr(client, "_serializer", None)
    if isinstance(serializer, _OrjsonWrites):
        return True
    if serializer is None:
        return False

    def install() -> None:
        client._serializer = _OrjsonWrites(serializer)  # type: ignore[attr-defined]

    return install_where_botocore_agrees("DynamoDB write bodies", lambda: _same_request(serializer, client), install)
