"""`tripstream status`: the stack, its stream, its tables, the consumer's iterator age, and the depth of the
on-failure and dead-letter queues (what `redrive` would hand back)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from tripstream.aws.cloudformation import describe_stack, outputs_of
from tripstream.aws.cloudwatch import max_iterator_age_seconds
from tripstream.aws.dynamodb import table_item_count
from tripstream.aws.errors import error_code, is_endpoint_error
from tripstream.aws.kinesis import describe_stream_summary
from tripstream.aws.sqs import queue_counts, receive_messages
from tripstream.infra.deploy import table_names
from tripstream.infra.template import DEFAULT_STACK_NAME, load_template, resource_names

if TYPE_CHECKING:
    from tripstream.aws.clients import AwsClients

_NOT_AVAILABLE: Final = "n/a"


@dataclass(frozen=True)
class Status:
    stack_name: str
    stack_status: str | None
    outputs: dict[str, str]
    stream: dict[str, Any]
    tables: dict[str, str]
    iterator_age: str
    # The on-failure and dead-letter queues: their depth and the oldest message seen in a peek.
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack_name,
            "status": self.stack_status,
            "outputs": self.outputs,
            "stream": self.stream,
            "tables": self.tables,
            "iterator_age": self.iterator_age,
            "queues": self.queues,
        }


def status(clients: AwsClients, *, stack_name: str = DEFAULT_STACK_NAME) -> Status:
    """The stack's state; the stream's shards; the tables' item counts; the consumer's iterator age.

    Item counts are DynamoDB's ``ItemCount`` (refreshed about every six hours on AWS: a scan of a big
    table would cost more than this is worth). The iterator age is the maximum of the consumer's
    ``IteratorAge`` over the last 15 minutes from CloudWatch, or ``n/a`` (no data points: an
    emulator, or no traffic).
    """
    template = load_template()
    names = resource_names(template)
    stack = describe_stack(clients.cloudformation, stack_name)
    stream_name = names["TripsStream"]
    stream: dict[str, Any]
    try:
        summary = describe_stream_summary(clients.kinesis, stream_name)
        stream = {
            "name": stream_name,
            "status": summary.status,
            "open_shards": _NOT_AVAILABLE if summary.open_shards is None else summary.open_shards,
            "mode": summary.mode or _NOT_AVAILABLE,
            "encryption": summary.encryption,
            "retention_hours": summary.retention_hours,
        }
    except Exception as error:
        if not is_endpoint_error(error):
            raise
        stream = {"name": stream_name, "status": error_code(error) or "error"}
    tables: dict[str, str] = {}
    for name in table_names(template):
        tables[name] = table_item_count(clients.dynamodb, name)
    return Status(
        stack_name=stack_name,
        stack_status=stack["StackStatus"] if stack is not None else None,
        outputs=outputs_of(stack) if stack is not None else {},
        stream=stream,
        tables=tables,
        iterator_age=_iterator_age(clients, names["ConsumerFunction"]),
        queues=_queues(clients, outputs_of(stack) if stack is not None else {}),
    )


# Stack output -> what `status` calls the queue.
_QUEUES: Final = {"OnFailureQueueUrl": "on-failure", "ProducerDeadLetterQueueUrl": "dead-letter"}


def _queues(clients: AwsClients, outputs: Mapping[str, str], now_ms: int | None = None) -> dict[str, dict[str, Any]]:
    """Each queue's approximate counts, and the age of the oldest of up to 10 messages peeked at (received with a
    visibility timeout of 0: they stay visible; their receive count grows by one). SQS's own
    ApproximateAgeOfOldestMessage is a CloudWatch metric only; a standard queue returns a sample of its messages,
    so with more than 10 waiting the true oldest may be older than shown."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    queues: dict[str, dict[str, Any]] = {}
    for output, label in _QUEUES.items():
        url = outputs.get(output)
        if not url:
            continue
        try:
            counts = queue_counts(clients.sqs, url)
            peeked = receive_messages(clients.sqs, url, wait_seconds=0, limit=10, visibility_timeout=0)
        except Exception as error:
            if not is_endpoint_error(error):
                raise
            queues[label] = {"url": url, "error": error_code(error) or "error"}
            continue
        sent = [m.sent_timestamp_ms for m in peeked if m.sent_timestamp_ms is not None]
        queues[label] = {
            "url": url,
            "messages": counts.visible,
            "in_flight": counts.in_flight,
            "oldest_age_seconds": round((now_ms - min(sent)) / 1000, 1) if sent else None,
            "peeked": len(peeked),
        }
    return queues


def _iterator_age(clients: AwsClients, function_name: str) -> str:
    seconds = max_iterator_age_seconds(clients.region, clients.endpoint_url, function_name)
    return _NOT_AVAILABLE if seconds is None else f"{seconds:.1f} s"


def format_status(state: Status) -> str:
    lines = [f"stack           {state.stack_name}: {state.stack_status or 'does not exist'}"]
    stream = state.stream
    lines.append(
        f"stream          {stream['name']}: {stream.get('status')}"
        + (
            f", {stream.get('mode', _NOT_AVAILABLE)}, {stream['open_shards']} open shards,"
            f" encryption {stream['encryption']}"
            if "open_shards" in stream
            else ""
        )
    )
    lines.append("tables          (approximate item counts: DynamoDB refreshes them about every 6 hours)")
    lines += [f"  {name:<26}{count}" for name, count in state.tables.items()]
    lines.append(f"iterator age    {state.iterator_age} (consumer, maximum over the last 15 minutes)")
    for label, queue in state.queues.items():
        if "error" in queue:
            lines.append(f"{label + ' queue':<16}{queue['error']}")
            continue
        age = queue["oldest_age_seconds"]
        oldest = f", oldest {age:.0f} s old (of {queue['peeked']} peeked)" if age is not None else ""
        hint = " - `tripstream redrive` hands them to the functions again" if queue["messages"] else ""
        lines.append(
            f"{label + ' queue':<16}{queue['messages']} messages, {queue['in_flight']} in flight{oldest}{hint}"
        )
    if "DashboardUrl" in state.outputs:
        lines.append(f"dashboard       {state.outputs['DashboardUrl']}")
    return "\n".join(lines)
