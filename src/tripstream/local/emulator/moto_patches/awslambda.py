"""Lambda's Invoke handed to tripstream's local Lambda service instead of Docker.

moto 5.2.1 runs an invoked function in Docker (`LambdaFunction._invoke_lambda`). Without Docker (measured) an
asynchronous Invoke answers 202 having run nothing, and a synchronous one answers 200 with the text `error running
docker: ...` as the function's result: a producer that continues a large file by invoking itself would lose the rest
of the file without an error. tripstream's functions are run by its local Lambda service (`local/lambda_service`),
so here, as Lambda does:

- `InvocationType=Event`: the invocation is queued. The function's name and the payload, as one JSON message
  (`{"FunctionName", "FunctionArn", "Payload"}`), go to the SQS queue `ASYNC_INVOCATIONS_QUEUE` of the function's
  account and region (created here when missing: Lambda's own queue always exists), which the local service reads
  and runs as Lambda runs an asynchronous invocation (retries, dead-letter queue). The answer is Lambda's: 202, no
  body.
- `RequestResponse`: nothing here can answer synchronously, so it is refused at once (`InvalidParameterValueException`,
  HTTP 400: botocore does not retry it) rather than answered with Docker's error as a result.
- `DryRun`: 204, as Lambda (the caller's permission was checked before, `moto_patches.iam`).

IAM is checked before any of this (`moto_patches.iam`: `lambda:InvokeFunction` on the function's ARN), and an unknown
function is still moto's 404.
"""

from __future__ import annotations

import json
from typing import Any, Final

from moto.awslambda import models as lambda_models
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import QueueDoesNotExist

from tripstream.local.emulator.environment import ASYNC_INVOCATIONS_QUEUE
from tripstream.local.emulator.moto_patches.version import parameter_names, shape_error

_MARKER: Final = "_tripstream_original_invoke"
_INVOKE_PARAMETERS: Final = ("self", "function_name", "qualifier", "body", "headers", "response_headers")
_SQS_PARAMETERS: Final = {
    "get_queue": ("self", "queue_name"),
    "create_queue": ("self", "name"),
    "send_message": ("self", "queue_name", "message_body"),
}


def _invoke(
    self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes:
    function = self.get_function(function_name, qualifier)  # moto's ResourceNotFoundException for an unknown one
    invocation_type = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type == "DryRun":
        return b""
    if invocation_type != "Event":
        raise InvalidParameterValueException(
            f"{function.function_name} is run by tripstream's local Lambda service, which takes asynchronous "
            "invocations only (InvocationType Event): nothing in this emulator can answer a RequestResponse Invoke"
        )
    payload = body.decode() if isinstance(body, bytes) else str(body or "{}")
    message = {"FunctionName": function.function_name, "FunctionArn": function.function_arn, "Payload": payload}
    sqs = sqs_models.sqs_backends[function.account_id][function.region]
    try:
        sqs.get_queue(ASYNC_INVOCATIONS_QUEUE)
    except QueueDoesNotExist:
        sqs.create_queue(ASYNC_INVOCATIONS_QUEUE)
    sqs.send_message(ASYNC_INVOCATIONS_QUEUE, json.dumps(message))
    response_headers["Content-Length"] = "0"
    return b""


def apply() -> None:
    """Queue asynchronous invocations for the local Lambda service. Idempotent; the caller holds the patches' lock."""
    backend: Any = lambda_models.LambdaBackend
    if hasattr(backend, _MARKER):
        return
    problems = []
    if parameter_names(backend.invoke) != _INVOKE_PARAMETERS:
        problems.append(f"LambdaBackend.invoke takes {parameter_names(backend.invoke)}")
    for method, first in _SQS_PARAMETERS.items():
        names = parameter_names(getattr(sqs_models.SQSBackend, method, None) or (lambda: None))
        if names[: len(first)] != first:
            problems.append(f"SQSBackend.{method} takes {names}")
    if problems:
        raise shape_error("Lambda Invoke", problems)
    setattr(backend, _MARKER, backend.invoke)
    backend.invoke = _invoke


def revert() -> None:
    backend: Any = lambda_models.LambdaBackend
    original = getattr(backend, _MARKER, None)
    if original is not None:
        backend.invoke = original
        delattr(backend, _MARKER)
