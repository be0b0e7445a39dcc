"""DynamoDB's and Kinesis's JSON requests past Flask (tripstream.local.emulator.json_lane), in-process: the same
answers as moto's own application (status, headers, body, errors) for the same requests, and every other request
left to moto's application."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import EnvironBuilder

from tripstream.local.emulator import moto_patches
from tripstream.local.emulator.json_lane import json_lane

pytestmark = pytest.mark.integration

# Each path works in a region of its own (moto keeps a backend per region): the same requests, separate state.
MOTO_REGION, LANE_REGION = "eu-west-1", "eu-west-2"
_VOLATILE = ("CreationDateTime", "StreamCreationTimestamp", "ApproximateArrivalTimestamp", "LastUpdateToPayPerRequest")

_MARKER_PUT = {"Put": {"TableName": "t", "Item": {"k": {"S": "m1"}}, "ConditionExpression": "attribute_not_exists(k)"}}
_DYNAMODB = [
    (
        "CreateTable",
        {
            "TableName": "t",
            "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ),
    ("PutItem", {"TableName": "t", "Item": {"k": {"S": "one"}, "n": {"N": "1"}}}),
    ("BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": {"k": {"S": f"b{n}"}}}} for n in range(25)]}}),
    ("BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": {"k": {"N": "1"}}}}]}}),  # wrong key type
    (
        "TransactWriteItems",
        {
            "TransactItems": [
                _MARKER_PUT,
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"k": {"S": "cell"}},
                        "UpdateExpression": "ADD #n :one",
                        "ExpressionAttributeNames": {"#n": "trips"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        },
    ),
    (  # the marker exists now: cancelled, with its reasons
        "TransactWriteItems",
        {"TransactItems": [_MARKER_PUT]},
    ),
    ("GetItem", {"TableName": "t", "Key": {"k": {"S": "cell"}}}),
    ("Scan", {"TableName": "t", "Limit": 3}),
    ("Query", {"TableName": "missing", "KeyConditionExpression": "k = :k"}),
    ("NoSuchAction", {}),
]
_KINESIS = [
    ("CreateStream", {"StreamName": "s", "ShardCount": 1}),
    ("PutRecords", {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": str(n)} for n in range(5)]}),
    ("ListShards", {"StreamName": "s"}),
    ("DescribeStreamSummary", {"StreamName": "s"}),
    ("DescribeStream", {"StreamName": "missing"}),
]


@pytest.fixture(scope="module")
def applications() -> Iterator[tuple[Any, Any]]:
    was_applied = moto_patches.is_applied()
    moto_patches.apply()
    moto_app = DomainDispatcherApplication(create_backend_app)
    yield moto_app, json_lane(moto_app)
    if not was_applied:
        moto_patches.revert()


def _environ(service: str, target: str, body: bytes, region: str, **headers: str) -> dict[str, Any]:
    credential = f"AKIAIOSFODNN7EXAMPLE/20250101/{region}/{service}/aws4_request"
    builder = EnvironBuilder(
        path="/",
        method=headers.pop("method", "POST"),
        data=body,
        headers={
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=0",
            **{name.replace("_", "-"): value for name, value in headers.items()},
        },
    )
    return builder.get_environ()


def _answer(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """Status, headers and body; what the application raised (moto's debug server lets it out) as the status."""
    mock_random.seed(1)  # the same request ids on both paths
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started.update(status=status, headers=headers)

    try:
        body = b"".join(app(environ, start_response))
    except Exception as error:
        return f"raised {type(error).__name__}: {error}", {}, b""
    return started["status"], dict(started["headers"]), body


def _comparable(answer: tuple[str, dict[str, str], bytes], region: str) -> tuple[str, dict[str, str], Any]:
    status, headers, body = answer
    crc = headers.pop("x-amz-crc32", None)
    if crc is not None:
        assert int(crc) == zlib.crc32(body)  # each path's checksum is of its own body
    headers.pop("date", None)
    if "Content-Length" in headers:  # the length of each path's own body (timestamps differ in digits)
        assert int(headers.pop("Content-Length")) == len(body)
    text = body.decode().replace(region, "<region>")
    try:
        document = json.loads(text)
    except ValueError:
        return status, headers, text
    return status, headers, _without_volatile(document)


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_volatile(item) for key, item in value.items() if key not in _VOLATILE}
    if isinstance(value, list):
        return [_without_volatile(item) for item in value]
    return value


@pytest.mark.parametrize(
    ("service", "prefix", "requests"),
    [
        ("dynamodb", "DynamoDB_20120810", _DYNAMODB),
        ("kinesis", "Kinesis_20131202", _KINESIS),
    ],
)
def test_the_lane_answers_what_moto_s_application_answers(
    applications: tuple[Any, Any], service: str, prefix: str, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    moto_app, lane = applications
    for action, parameters in [*requests, ("Malformed", {})]:
        body = b"{not json" if action == "Malformed" else json.dumps(parameters).encode()
        target = f"{prefix}.{'PutItem' if action == 'Malformed' else action}"
        expected = _answer(moto_app, _environ(service, target, body, MOTO_REGION))
        answered = _answer(lane, _environ(service, target, body, LANE_REGION))
        assert _comparable(answered, LANE_REGION) == _comparable(expected, MOTO_REGION), action
        if action == "BatchWriteItem":
            assert expected[0] in ("200 OK", "400 BAD REQUEST")


def test_other_requests_go_to_moto_s_application(applications: tuple[Any, Any]) -> None:
    moto_app, _ = applications
    seen: list[str] = []

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(environ["REQUEST_METHOD"] + " " + environ["PATH_INFO"])
        return moto_app(environ, start_response)  # type: ignore[no-any-return]

    lane = json_lane(counted)
    body = json.dumps({"TableName": "t"}).encode()
    target = "DynamoDB_20120810.DescribeTable"
    others = [
        _environ("dynamodb", target, body, LANE_REGION, method="GET"),
        _environ("dynamodb", target, gzip.compress(body), LANE_REGION, Content_Encoding="gzip"),
        _environ("dynamodb", target, body, LANE_REGION, Origin="https://example.com"),
        _environ("kinesis", target, body, LANE_REGION),  # signed for another service than its target's
        _environ("dynamodb", "DynamoDBStreams_20120810.ListStreams", b"{}", LANE_REGION),
    ]
    unsigned = _environ("dynamodb", target, body, LANE_REGION)
    del unsigned["HTTP_AUTHORIZATION"]
    for environ in [*others, unsigned]:
        _answer(lane, environ)
    assert len(seen) == len(others) + 1
    _answer(lane, _environ("dynamodb", target, body, LANE_REGION))
    assert len(seen) == len(others) + 1  # a plain signed DynamoDB request: the lane's own
