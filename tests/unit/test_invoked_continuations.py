"""How Lambda's asynchronous invocation (local_service.async_invocation) follows continuations the producer invoked
itself: what runs next is what Lambda's queue handed over (`take_invoked`), not the response's copy; a continuation
returned but never queued fails the object; a stop leaves it."""

from __future__ import annotations

import threading
from typing import Any

from tripstream.aws.lambda_ import FunctionInfo
from tripstream.local.lambda_service.async_invocation import invoke_producer

FUNCTION = FunctionInfo(
    name="lambda-kinesis-producer",
    arn="arn:aws:lambda:us-east-1:123456789012:function:lambda-kinesis-producer",
    role_arn="arn:aws:iam::123456789012:role/producer",
    timeout_seconds=60,
    memory_mb=1024,
    environment={},
)


class Producer:
    """A handler that continues `parts` times, recording each event it is invoked with."""

    def __init__(self, parts: int) -> None:
        self.parts = parts
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        part = len(self.events)
        response: dict[str, Any] = {"results": [{"part": part}]}
        if part < self.parts:
            response["continuation"] = {"tripstream_continuation": [{"part": part + 1}]}
        return response


def test_the_invoked_continuation_is_what_runs_next() -> None:
    producer = Producer(parts=3)
    taken: list[dict[str, Any]] = []

    def take_invoked(continuation: dict[str, Any]) -> dict[str, Any]:
        taken.append(continuation)
        return {**continuation, "from_the_queue": True}

    run = invoke_producer(producer, {"Records": []}, FUNCTION, take_invoked=take_invoked)
    assert run.invocations == 3 and run.continuations_invoked == 2 and not run.errors
    assert [event.get("from_the_queue") for event in producer.events] == [None, True, True]
    assert taken == [{"tripstream_continuation": [{"part": 2}]}, {"tripstream_continuation": [{"part": 3}]}]


def test_a_continuation_returned_but_never_invoked_fails_the_object() -> None:
    producer = Producer(parts=2)
    run = invoke_producer(producer, {"Records": []}, FUNCTION, take_invoked=lambda continuation: None)
    assert run.invocations == 1 and run.gave_up and not run.stopped
    assert "did not invoke it" in run.errors[0]


def test_a_stop_while_waiting_for_the_continuation_leaves_it() -> None:
    producer = Producer(parts=2)
    stop = threading.Event()

    def take_invoked(continuation: dict[str, Any]) -> None:
        stop.set()  # `up` stopping while the service waits

    run = invoke_producer(producer, {"Records": []}, FUNCTION, take_invoked=take_invoked, stop=stop)
    assert run.invocations == 1 and run.stopped and not run.gave_up and not run.errors
