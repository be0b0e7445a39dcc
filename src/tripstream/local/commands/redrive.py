"""`redrive` against a deployed stack: who the work is handed to (`pipeline.redrive` does the rest).

- A stack deployed for Lambda (`LocalRuntime=false`: AWS, or an endpoint whose Lambda runs functions): the deployed
  functions, invoked synchronously (`lambda:InvokeFunction`) with a Kinesis-shaped event (the consumer) or the event
  from the dead-letter queue (the producer), so that the outcome is known before a message is deleted.
- A stack deployed for the local runtime (`LocalRuntime=true`: the emulator runs no function): the handlers in this
  process, with the dependencies the local runtime gives them (`local.lambda_service.functions.LocalFunctions`, the
  functions' environment), the producer through its `invoke_producer` (its retries and continuations). What the
  producer sends then goes to the consumer: a live `up` consumes it itself; without one, the records that arrived
  in the stream since the producer started are handed to the consumer here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tripstream.aws.clients import AwsClients
from tripstream.aws.kinesis import list_shard_ids, read_shard_since
from tripstream.aws.lambda_ import FunctionInfo, invoke_sync
from tripstream.infra.stack import DeployedStack, read_stack
from tripstream.local.lambda_service.context import LocalLambdaContext
from tripstream.local.lambda_service.events import kinesis_event
from tripstream.local.lambda_service.functions import LocalFunctions
from tripstream.local.lambda_service.s3_notifications import live_runtime_running
from tripstream.pipeline.redrive import Outcome, RedriveReport, deliver, redrive

# Records that arrived just before the producer started are consumed again too (idempotent): clocks differ a bit.
_CLOCK_SLACK = timedelta(seconds=2)


class FunctionFailed(RuntimeError):
    """A function's invocation failed (its error, as Lambda or the handler reported it)."""


def _context(function: FunctionInfo) -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name=function.name,
        invoked_function_arn=function.arn,
        memory_limit_in_mb=function.memory_mb,
        timeout_seconds=function.timeout_seconds,
    )


def _kinesis_batch(
    clients: AwsClients, stack: DeployedStack, shard_id: str, records: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The consumer's event for `records`, as the stack's event source mapping would deliver them."""
    return kinesis_event(
        records,
        shard_id=shard_id,
        stream_arn=stack.outputs["StreamArn"],
        region=clients.region,
        role_arn=stack.consumer.role_arn,
    )


class InProcessFunctions:
    """The handlers in this process, as the local runtime runs them."""

    def __init__(self, clients: AwsClients, handler_clients: AwsClients, stack: DeployedStack) -> None:
        self._clients = clients
        self._stack = stack
        self._functions = LocalFunctions(clients, handler_clients, stack)
        self._consumer = self._functions.consumer_handler()

    def consume(self, shard_id: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        event = _kinesis_batch(self._clients, self._stack, shard_id, records)
        return self._consumer(event, _context(self._stack.consumer))

    def produce(self, event: dict[str, Any]) -> None:
        started = datetime.now(UTC) - _CLOCK_SLACK
        # No dead-letter queue here: a redrive that fails keeps its message, it does not add one.
        run = self._functions.invoke_producer(event, dead_letter=False)
        if run.gave_up:
            raise FunctionFailed(run.errors[-1] if run.errors else "the producer failed")
        if live_runtime_running(self._clients):
            return  # a live `up` consumes the stream
        kinesis, stream = self._clients.kinesis, self._stack.stream_name
        for shard_id in list_shard_ids(kinesis, stream):
            deliver(self, shard_id, read_shard_since(kinesis, stream, shard_id, started))


class LambdaFunctions:
    """The deployed functions, invoked synchronously."""

    def __init__(self, clients: AwsClients, stack: DeployedStack) -> None:
        self._clients = clients
        self._stack = stack
        longest = max(stack.producer.timeout_seconds, stack.consumer.timeout_seconds)
        # The answer comes when the function ends; no botocore retry (a retried invoke would run it twice).
        self._lambda = clients.with_options(max_attempts=1, read_timeout=longest + 30).lambda_

    def _invoke(self, function: FunctionInfo, event: dict[str, Any]) -> Any:
        answer = invoke_sync(self._lambda, function.name, orjson.dumps(event))
        if answer.function_error or answer.status >= 300:
            raise FunctionFailed(
                f"{function.name}: {answer.function_error}: {answer.payload[:500].decode(errors='replace')}"
            )
        return orjson.loads(answer.payload) if answer.payload.strip() else None

    def consume(self, shard_id: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        response = self._invoke(self._stack.consumer, _kinesis_batch(self._clients, self._stack, shard_id, records))
        return response if isinstance(response, dict) else {}

    def produce(self, event: dict[str, Any]) -> None:
        self._invoke(self._stack.producer, event)


def redrive_stack(
    clients: AwsClients,
    handler_clients: AwsClients,
    stack_name: str,
    *,
    dry_run: bool = False,
    delete_expired: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> tuple[RedriveReport, str]:
    """Redrive both queues of the stack; returns the report and who did the work ("lambda" or "in-process")."""
    stack = read_stack(clients, stack_name)
    in_process = stack.parameters.get("LocalRuntime", "false") == "true"
    functions = InProcessFunctions(clients, handler_clients, stack) if in_process else LambdaFunctions(clients, stack)
    report = redrive(
        clients.sqs,
        clients.kinesis,
        stream_name=stack.stream_name,
        on_failure_queue_url=stack.outputs.get("OnFailureQueueUrl"),
        dead_letter_queue_url=stack.outputs.get("ProducerDeadLetterQueueUrl"),
        functions=functions,
        dry_run=dry_run,
        delete_expired=delete_expired,
        visibility_seconds=int(stack.producer.timeout_seconds) + 60,
        on_outcome=on_outcome,
    )
    return report, "in-process" if in_process else "lambda"


__all__ = ["FunctionFailed", "InProcessFunctions", "LambdaFunctions", "redrive_stack"]
