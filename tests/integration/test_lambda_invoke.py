"""Lambda's Invoke on tripstream's emulator (moto_patches.awslambda): an asynchronous invocation is queued for the
local Lambda service, as Lambda queues it; a synchronous one is refused at once, where moto would answer Docker's
error as the function's result. And the emulator's own key, under IAM enforcement, still reads Lambda (moto_patches.iam:
its GETs were refused as badly signed)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError
from moto.awslambda import models as lambda_models

from support.cli import reset_emulator
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.lambda_ import function_info, invoke_async, invoke_sync
from tripstream.aws.sqs import queue_url_or_none, receive_messages
from tripstream.local.emulator.environment import ASYNC_INVOCATIONS_QUEUE
from tripstream.local.emulator.moto_patches import MotoVersionError, awslambda
from tripstream.local.emulator.server import set_iam_enforcement
from tripstream.local.lambda_service.invocation_queue import InvocationQueue, parse_invocation

pytestmark = pytest.mark.integration

FUNCTION = "invoke-patch-probe"


@pytest.fixture(scope="module")
def clients(emulator_endpoint: str) -> Iterator[AwsClients]:
    """One function for the module (the session emulator emptied first: a reset costs seconds)."""
    reset_emulator(emulator_endpoint)
    admin = AwsClients.create(endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    role = admin.iam.create_role(RoleName="invoke-probe", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("probe.py", "def handle(event, context):\n    return event\n")
    admin.lambda_.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="probe.handle",
        Code={"ZipFile": package.getvalue()},
    )
    yield admin


def test_an_asynchronous_invoke_is_queued_for_the_local_service(clients: AwsClients) -> None:
    if (old := queue_url_or_none(clients.sqs, ASYNC_INVOCATIONS_QUEUE)) is not None:
        clients.sqs.delete_queue(QueueUrl=old)  # the emulator makes it again, as Lambda's queue always exists
    arn = function_info(clients.lambda_, FUNCTION).arn
    answer = clients.lambda_.invoke(FunctionName=arn, InvocationType="Event", Payload=b'{"part": 1}')
    assert answer["StatusCode"] == 202 and answer["Payload"].read() == b""
    url = queue_url_or_none(clients.sqs, ASYNC_INVOCATIONS_QUEUE)
    assert url is not None
    (message,) = receive_messages(clients.sqs, url, wait_seconds=0, limit=10, visibility_timeout=0)
    assert orjson.loads(message.body)["FunctionArn"] == arn
    assert parse_invocation(message.body) is not None
    assert parse_invocation(message.body) == parse_invocation(
        orjson.dumps({"FunctionName": FUNCTION, "Payload": '{"part": 1}'}).decode()
    )


def test_the_service_takes_each_invocation_by_its_payload_whoever_received_it(clients: AwsClients) -> None:
    queue = InvocationQueue(clients.sqs)
    for part in (1, 2, 3):
        invoke_async(clients.lambda_, FUNCTION, orjson.dumps({"take": part}))
    # Taken out of order: the first take receives all three and holds the two it was not asking for.
    assert queue.take(FUNCTION, {"take": 3}, timeout=5) == {"take": 3}
    assert queue.take(FUNCTION, {"take": 1}, timeout=5) == {"take": 1}
    assert queue.take("another-function", {"take": 2}, timeout=1) is None
    assert queue.take(FUNCTION, {"take": 2}, timeout=5) == {"take": 2}
    assert queue.take(FUNCTION, {"take": 2}, timeout=1) is None  # each one once


def test_an_invocation_nobody_takes_is_unclaimed_after_its_window_and_can_be_queued_again(
    clients: AwsClients,
) -> None:
    queue = InvocationQueue(clients.sqs)
    invoke_async(clients.lambda_, FUNCTION, orjson.dumps({"user": 1}))
    assert queue.take_unclaimed(claim_after=60) is None  # received and held: a taker may still ask for it
    polls = (queue.take_unclaimed(claim_after=0) for _ in range(5))  # each call polls once, up to a second
    unclaimed = next((invocation for invocation in polls if invocation is not None), None)
    assert unclaimed is not None and (unclaimed.function_name, unclaimed.payload) == (FUNCTION, {"user": 1})
    assert queue.take(FUNCTION, {"user": 1}, timeout=1) is None  # taken: gone from the queue
    queue.put_back(unclaimed)  # the service stopped before it ran to its end
    assert queue.take(FUNCTION, {"user": 1}, timeout=5) == {"user": 1}


def test_a_synchronous_invoke_is_refused_at_once(clients: AwsClients) -> None:
    with pytest.raises(ClientError) as refused:
        invoke_sync(clients.lambda_, FUNCTION, b"{}")
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert "asynchronous invocations only" in error["Message"]
    answer = clients.lambda_.invoke(FunctionName=FUNCTION, InvocationType="DryRun", Payload=b"{}")
    assert answer["StatusCode"] == 204
    with pytest.raises(ClientError) as unknown:
        invoke_async(clients.lambda_, "no-such-function", b"{}")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_emulator_key_reads_lambda_under_iam_enforcement(clients: AwsClients) -> None:
    assert clients.endpoint_url is not None
    set_iam_enforcement(clients.endpoint_url, True)
    try:
        assert function_info(clients.lambda_, FUNCTION).name == FUNCTION
        assert [f["FunctionName"] for f in clients.lambda_.list_functions()["Functions"]] == [FUNCTION]
        invoke_async(clients.lambda_, FUNCTION, b"{}")
    finally:
        set_iam_enforcement(clients.endpoint_url, False)


def test_the_patch_applies_once_reverts_and_refuses_another_moto_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process (not the emulator's): moto's own Invoke restored by `revert`; a changed signature refused."""
    original = lambda_models.LambdaBackend.invoke
    awslambda.apply()
    try:
        patched = lambda_models.LambdaBackend.invoke
        assert patched is not original
        awslambda.apply()
        assert lambda_models.LambdaBackend.invoke is patched
    finally:
        awslambda.revert()
    assert lambda_models.LambdaBackend.invoke is original

    def invoke(self: Any, function_name: str, body: Any) -> None: ...

    monkeypatch.setattr(lambda_models.LambdaBackend, "invoke", invoke)
    with pytest.raises(MotoVersionError, match=r"moto 5\.2\.1.*LambdaBackend\.invoke takes"):
        awslambda.apply()
