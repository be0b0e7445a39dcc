"""Lambda's asynchronous invocation of the producer (an S3 event): retries, the dead-letter queue, continuations.

A failed invocation is retried twice with the same event, as Lambda does for S3 notifications; an event every
attempt failed on goes to the function's dead-letter queue (SQS) in the shape Lambda sends; a continuation (a large
file finished in several invocations) is invoked in turn until the file is done: the one the producer queued itself
with `lambda:InvokeFunction` (`take_invoked`, from `invocation_queue`), else the one its response returns
(`CONTINUATION_MODE=return`, in-process).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tripstream.aws.lambda_ import FunctionInfo
from tripstream.aws.sqs import send_message
from tripstream.local.lambda_service.context import LocalLambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
# Lambda retries a failed asynchronous invocation (such as an S3 notification) twice.
ASYNC_RETRY_ATTEMPTS = 2


@dataclass
class ProducerRun:
    results: list[dict[str, Any]] = field(default_factory=list)
    invocations: int = 0
    failed_invocations: int = 0
    errors: list[str] = field(default_factory=list)
    # Every attempt of one invocation failed: the rest of the file was never sent (Lambda would now hand the
    # event to the producer's dead-letter queue).
    gave_up: bool = False
    # Records that failed invocations did get into the stream before failing (their retry sends them again).
    records_sent_by_failed_invocations: int = 0
    # What the last failed attempt read and sent: counted in the summary when the event is given up on.
    last_failure_rows_read: int = 0
    last_failure_records_sent: int = 0
    # The event given up on was sent to the producer's dead-letter queue (its SQS message id).
    dead_letter_message_id: str | None = None
    # The service stopped before the file was done: what is left is neither retried nor continued.
    stopped: bool = False
    # Continuations the producer invoked itself (lambda:InvokeFunction), taken from Lambda's queue.
    continuations_invoked: int = 0


def invoke_producer(
    handler: Handler,
    event: dict[str, Any],
    function: FunctionInfo,
    *,
    timeout_seconds: float | None = None,
    retry_attempts: int = ASYNC_RETRY_ATTEMPTS,
    new_context: Callable[[], Any] | None = None,
    sqs: SQSClient | None = None,
    dead_letter_queue_url: str | None = None,
    stop: threading.Event | None = None,
    take_invoked: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> ProducerRun:
    """Invoke the producer as Lambda would for an S3 event, following continuations until the file is done.

    A failed invocation is retried `retry_attempts` times with the same event (Lambda's asynchronous retries);
    `new_context` replaces the Lambda context of each invocation (tests use it to fake the remaining time).
    When every attempt failed, the event given up on (the S3 event, or the continuation that failed) goes to
    `dead_letter_queue_url` with `sqs`, as Lambda sends it to the function's dead-letter queue.
    Once `stop` is set, the invocation in flight is told no time remains (the producer then ends at its next
    budget check, with a continuation), and nothing more is invoked (`run.stopped`).
    With `take_invoked`, the producer invokes its continuations itself: the one its response names is what
    `take_invoked` returns (the invocation it queued; None: it never arrived, or the service stopped).
    """
    run = ProducerRun()
    pending: dict[str, Any] | None = event
    while pending is not None:
        attempt = 0
        while True:
            if stop is not None and stop.is_set():
                run.stopped = True
                return run
            if new_context is not None:
                context = new_context()
            else:
                context = LocalLambdaContext(
                    function_name=function.name,
                    invoked_function_arn=function.arn,
                    memory_limit_in_mb=function.memory_mb,
                    timeout_seconds=timeout_seconds if timeout_seconds is not None else function.timeout_seconds,
                    stopped=stop,
                )
            run.invocations += 1
            try:
                response = handler(pending, context)
            except Exception as error:
                run.failed_invocations += 1
                run.records_sent_by_failed_invocations += getattr(error, "sent", 0)
                run.last_failure_rows_read = getattr(error, "rows_read", 0)
                run.last_failure_records_sent = getattr(error, "sent", 0)
                run.errors.append(f"{type(error).__name__}: {error}")
                if stop is not None and stop.is_set():
                    run.stopped = True  # failed while stopping: no retry, no dead-letter queue
                    return run
                log.warning("producer invocation failed (attempt %d): %s", attempt + 1, error)
                attempt += 1
                if attempt > retry_attempts:
                    run.gave_up = True
                    if sqs is not None and dead_letter_queue_url:
                        run.dead_letter_message_id = send_to_dead_letter_queue(
                            sqs, dead_letter_queue_url, pending, getattr(context, "aws_request_id", ""), error
                        )
                    return run
                continue
            run.results.extend(response.get("results", []))
            pending = response.get("continuation")
            if pending is not None and take_invoked is not None:
                pending = _invoked_continuation(run, pending, take_invoked, stop)
            break
    return run


def _invoked_continuation(
    run: ProducerRun,
    continuation: dict[str, Any],
    take_invoked: Callable[[dict[str, Any]], dict[str, Any] | None],
    stop: threading.Event | None,
) -> dict[str, Any] | None:
    """The continuation the producer queued with lambda:InvokeFunction (None: nothing more to invoke)."""
    invoked = take_invoked(continuation)
    if invoked is not None:
        run.continuations_invoked += 1
        return invoked
    if stop is not None and stop.is_set():
        run.stopped = True
    else:  # it returned a continuation but queued none: the rest of the file would be lost on AWS too
        run.gave_up = True
        run.errors.append("the producer returned a continuation but did not invoke it (lambda:InvokeFunction)")
    return None


def send_to_dead_letter_queue(
    sqs: SQSClient, queue_url: str, event: dict[str, Any], request_id: str, error: BaseException
) -> str:
    """What Lambda sends to an SQS dead-letter queue for an asynchronous invocation that exhausted its retries:
    the event itself as the body, and RequestID, ErrorCode and ErrorMessage (at most 1 KB) as attributes."""
    message = f"{type(error).__name__}: {error}".encode()[:1024].decode("utf-8", "ignore")
    message_id = send_message(
        sqs,
        queue_url,
        orjson.dumps(event).decode(),
        {
            "RequestID": {"DataType": "String", "StringValue": request_id or str(uuid.uuid4())},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": message or "Unhandled"},
        },
    )
    log.error("every attempt of the producer failed: event sent to the dead-letter queue (%s)", message)
    return message_id
