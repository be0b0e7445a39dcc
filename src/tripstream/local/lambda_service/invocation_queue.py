"""Lambda's queue of asynchronous invocations, as the patched emulator fills it: what a function's own
`lambda:InvokeFunction` (InvocationType Event) asked for, for the local Lambda service to run.

The emulator checks the call under the caller's role (`moto_patches.iam`: `lambda:InvokeFunction` on the function's
ARN) and queues it (`moto_patches.awslambda`: one SQS message `{"FunctionName", "FunctionArn", "Payload"}`). The
producer continues a large file that way; the service takes the continuation the producer says it invoked (the one
in its response) from here, and runs what the queue holds, with its retries and dead-letter queue
(`async_invocation.invoke_producer`). Several takers may wait at once (`up`'s workers): a message one of them
received for another is held here until its taker asks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from tripstream.aws.sqs import Message, delete_message, ensure_queue, receive_messages
from tripstream.local.emulator.environment import ASYNC_INVOCATIONS_QUEUE

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
# A message held for another taker stays invisible this long, then is received again (a taker that died).
_HOLD_SECONDS: Final = 300


@dataclass(frozen=True)
class QueuedInvocation:
    function_name: str
    payload: dict[str, Any]


def parse_invocation(body: str) -> QueuedInvocation | None:
    """The invocation of one queue message (None for what the emulator would not have written)."""
    try:
        message = orjson.loads(body)
        payload = orjson.loads(message["Payload"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(payload, dict) or not isinstance(message.get("FunctionName"), str):
        return None
    return QueuedInvocation(message["FunctionName"], payload)


class InvocationQueue:
    """The emulator's queue of asynchronous invocations (created if missing), read by the local Lambda service."""

    def __init__(self, sqs: SQSClient) -> None:
        self._sqs = sqs
        self._url, _ = ensure_queue(sqs, ASYNC_INVOCATIONS_QUEUE, visibility_timeout=30)
        self._held: dict[str, tuple[Message, QueuedInvocation]] = {}  # by message id
        self._lock = threading.Lock()

    def take(
        self,
        function_name: str,
        payload: Mapping[str, Any],
        *,
        timeout: float = 30.0,
        stop: threading.Event | None = None,
    ) -> dict[str, Any] | None:
        """The payload of the queued invocation of `function_name` equal to `payload`, removed from the queue; None
        when none arrived within `timeout`, or `stop` was set (the message then stays queued)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for message_id, (message, invocation) in self._held.items():
                    if invocation.function_name == function_name and invocation.payload == payload:
                        del self._held[message_id]
                        delete_message(self._sqs, self._url, message.receipt_handle)
                        return invocation.payload
                if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                    return None
                received = receive_messages(
                    self._sqs, self._url, wait_seconds=1, limit=10, visibility_timeout=_HOLD_SECONDS
                )
                for message in received:
                    if (queued := parse_invocation(message.body)) is None:
                        log.warning("not an invocation, deleted from %s: %.200s", ASYNC_INVOCATIONS_QUEUE, message.body)
                        delete_message(self._sqs, self._url, message.receipt_handle)
                        continue
                    self._held[message.message_id] = (message, queued)
