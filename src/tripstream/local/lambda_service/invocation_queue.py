"""Lambda's queue of asynchronous invocations, as the patched emulator fills it: what a function's own
`lambda:InvokeFunction` (InvocationType Event) asked for, for the local Lambda service to run.

The emulator checks the call under the caller's role (`moto_patches.iam`: `lambda:InvokeFunction` on the function's
ARN) and queues it (`moto_patches.awslambda`: one SQS message `{"FunctionName", "FunctionArn", "Payload"}`). The
producer continues a large file that way; the service takes the continuation the producer says it invoked (the one
in its response) from here, and runs what the queue holds, with its retries and dead-letter queue
(`async_invocation.invoke_producer`). Several takers may wait at once (`up`'s workers): a message one of them
received for another is held here until its taker asks. What no taker asks for within its wait (an invocation a
user's own client queued, `aws lambda invoke --invocation-type Event`; a continuation whose taker is gone) is
unclaimed: `up` runs those too (`take_unclaimed`), as Lambda runs every asynchronous invocation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from tripstream.aws.sqs import Message, delete_message, ensure_queue, receive_messages, send_message
from tripstream.local.emulator.environment import ASYNC_INVOCATIONS_QUEUE

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
# A message held for another taker stays invisible this long, then is received again (a taker that died).
_HOLD_SECONDS: Final = 300
#: How long a taker waits for the invocation it expects.
TAKE_TIMEOUT_SECONDS: Final = 30.0
#: An invocation nobody took this long after its arrival is unclaimed. A continuation's taker asks for it as soon as
#: the producer's invocation returns (the message is queued before that), so well within this.
UNCLAIMED_AFTER_SECONDS: Final = 10.0


@dataclass(frozen=True)
class QueuedInvocation:
    function_name: str
    payload: dict[str, Any]
    body: str = field(default="", compare=False)  # the queue message, as the emulator wrote it (to queue it again)


def parse_invocation(body: str) -> QueuedInvocation | None:
    """The invocation of one queue message (None for what the emulator would not have written)."""
    try:
        message = orjson.loads(body)
        payload = orjson.loads(message["Payload"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(payload, dict) or not isinstance(message.get("FunctionName"), str):
        return None
    return QueuedInvocation(message["FunctionName"], payload, body)


class InvocationQueue:
    """The emulator's queue of asynchronous invocations (created if missing), read by the local Lambda service."""

    def __init__(self, sqs: SQSClient) -> None:
        self._sqs = sqs
        self._url, _ = ensure_queue(sqs, ASYNC_INVOCATIONS_QUEUE, visibility_timeout=30)
        # By message id: the message, its invocation and when it was first received (monotonic seconds).
        self._held: dict[str, tuple[Message, QueuedInvocation, float]] = {}
        self._lock = threading.Lock()

    def take(
        self,
        function_name: str,
        payload: Mapping[str, Any],
        *,
        timeout: float = TAKE_TIMEOUT_SECONDS,
        stop: threading.Event | None = None,
    ) -> dict[str, Any] | None:
        """The payload of the queued invocation of `function_name` equal to `payload`, removed from the queue; None
        when none arrived within `timeout`, or `stop` was set (the message then stays queued)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for message_id, (_, invocation, _) in self._held.items():
                    if invocation.function_name == function_name and invocation.payload == payload:
                        return self._remove(message_id).payload
                if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                    return None
                self._receive()

    def take_unclaimed(self, claim_after: float = UNCLAIMED_AFTER_SECONDS) -> QueuedInvocation | None:
        """An invocation nobody took within `claim_after` seconds of its arrival (one a user's own client queued,
        or a continuation whose taker is gone), removed from the queue; None after one poll without any."""
        with self._lock:
            now = time.monotonic()
            for message_id, (_, _, received) in self._held.items():
                if now - received >= claim_after:
                    return self._remove(message_id)
            self._receive()
        return None

    def put_back(self, invocation: QueuedInvocation) -> None:
        """Queue a taken invocation again (the service stopped before it ran to its end)."""
        send_message(self._sqs, self._url, invocation.body)

    def _remove(self, message_id: str) -> QueuedInvocation:
        message, invocation, _ = self._held.pop(message_id)
        delete_message(self._sqs, self._url, message.receipt_handle)
        return invocation

    def _receive(self) -> None:
        """One poll of the queue (up to a second): what arrives is held for its taker."""
        received = receive_messages(self._sqs, self._url, wait_seconds=1, limit=10, visibility_timeout=_HOLD_SECONDS)
        for message in received:
            if (queued := parse_invocation(message.body)) is None:
                log.warning("not an invocation, deleted from %s: %.200s", ASYNC_INVOCATIONS_QUEUE, message.body)
                delete_message(self._sqs, self._url, message.receipt_handle)
                continue
            self._held.setdefault(message.message_id, (message, queued, time.monotonic()))
