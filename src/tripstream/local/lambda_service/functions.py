"""The stack's two functions as the local Lambda service runs them: the one place that builds a function's
dependencies, its handler and the consumer's event source mapping (as chalice's `create_local_server` is for its
local server).

`LocalFunctions` is what `run`, `replay` and `up` (and `redrive`) hold: `invoke_producer` for an S3 event
(asynchronous invocation with retries, dead-letter queue and continuations) and `event_source_mapping` for the
stream (its settings from the template, its checkpoints in the state folder, on-failure destination). What every
consumer invocation returned is summed in `ConsumerTotals`, the mapping's own count of records done beside it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tripstream.aws.clients import AwsClients
from tripstream.aws.kinesis import describe_stream_summary
from tripstream.aws.lambda_ import FunctionInfo
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers import producer as producer_handler
from tripstream.handlers.dependencies import Dependencies
from tripstream.infra.stack import DeployedStack
from tripstream.infra.template import event_source_mapping_settings, load_template
from tripstream.local.lambda_service.async_invocation import Handler, ProducerRun, invoke_producer
from tripstream.local.lambda_service.checkpoints import CheckpointStore
from tripstream.local.lambda_service.event_source_mapping import EventSourceMapping, StreamInfo
from tripstream.pipeline.consumer import ConsumerResult
from tripstream.settings import Settings

DURATION_CATEGORIES = ("short", "medium", "long")


def handler_settings(function: FunctionInfo, overrides: Mapping[str, str] | None = None) -> Settings:
    """The settings a handler would read in Lambda: its function's environment (plus test overrides)."""
    environment = {**function.environment, "CONTINUATION_MODE": "return", **(overrides or {})}
    return Settings.from_env(environment)


@dataclass
class ConsumerTotals:
    """What the consumer's invocations returned, summed (thread-safe: the mapping's pollers add to it)."""

    trips_processed: int = 0
    records_consumed: int = 0
    records_rejected: Counter[str] = field(default_factory=Counter)
    items_written: Counter[str] = field(default_factory=Counter)
    duration_categories: Counter[str] = field(default_factory=Counter)
    unprocessed_items_retried: int = 0
    calls_retried: int = 0
    rejects_keys: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, result: ConsumerResult) -> None:
        done = result.records_received if result.first_failed_sequence is None else None
        with self._lock:
            self.trips_processed += result.trips_processed
            # A batch that stopped at a failed record is done up to it: its trips and its rejects.
            self.records_consumed += (
                done if done is not None else result.trips_processed + sum(result.records_rejected.values())
            )
            self.records_rejected.update(result.records_rejected)
            self.items_written.update(result.items_written)
            self.duration_categories.update(result.duration_categories)
            self.unprocessed_items_retried += result.unprocessed_retried
            self.calls_retried += result.calls_retried
            if result.rejects_key:
                self.rejects_keys.append(result.rejects_key)

    def rejected(self) -> dict[str, int]:
        return dict(sorted(self.records_rejected.items()))

    def written(self) -> dict[str, int]:
        return dict(sorted(self.items_written.items()))

    def categories(self) -> dict[str, int]:
        return {category: self.duration_categories.get(category, 0) for category in DURATION_CATEGORIES}


@dataclass
class LocalFunctions:
    """The producer and the consumer of one deployed stack, run by the local Lambda service.

    `clients` are the service's own (reading the stream, sending to the on-failure and dead-letter queues);
    `handler_clients` are what the functions' code gets. `environment_overrides` are added to both functions'
    environment (tests shrink batch sizes and budgets with them).
    """

    clients: AwsClients
    handler_clients: AwsClients
    stack: DeployedStack
    environment_overrides: Mapping[str, str] | None = None

    def settings(self, function: FunctionInfo) -> Settings:
        return handler_settings(function, self.environment_overrides)

    def producer_handler(self, on_progress: Callable[[int, int], None] | None = None) -> Handler:
        deps = Dependencies(self.handler_clients, self.settings(self.stack.producer))
        return producer_handler.make_handler(lambda: deps, on_progress=on_progress)

    def consumer_handler(self, on_result: Callable[[ConsumerResult], None] | None = None) -> Handler:
        deps = Dependencies(self.handler_clients, self.settings(self.stack.consumer))
        return consumer_handler.make_handler(lambda: deps, on_result)

    def invoke_producer(
        self,
        event: dict[str, Any],
        *,
        on_progress: Callable[[int, int], None] | None = None,
        timeout_seconds: float | None = None,
        dead_letter: bool = True,
        stop: threading.Event | None = None,
    ) -> ProducerRun:
        """Lambda's asynchronous invocation of the producer on `event`, until its file is done or given up (then
        the event goes to the dead-letter queue, unless `dead_letter` is false: a redrive keeps its message), or
        `stop` is set."""
        return invoke_producer(
            self.producer_handler(on_progress),
            event,
            self.stack.producer,
            timeout_seconds=timeout_seconds,
            sqs=self.clients.sqs,
            dead_letter_queue_url=self.stack.dead_letter_queue_url if dead_letter else None,
            stop=stop,
        )

    def event_source_mapping(
        self,
        *,
        state_dir: Path | None,
        totals: ConsumerTotals | None = None,
        on_result: Callable[[ConsumerResult], None] | None = None,
        on_records_done: Callable[[int], None] | None = None,
        wrap_consumer: Callable[[Handler], Handler] | None = None,
        idle_poll_interval: float | None = None,
    ) -> EventSourceMapping:
        """The consumer's mapping on every shard, from the checkpoints under `state_dir` (in memory without one);
        each invocation's result is added to `totals` and passed to `on_result`. Not started."""

        def on_consumer_result(result: ConsumerResult) -> None:
            if totals is not None:
                totals.add(result)
            if on_result is not None:
                on_result(result)

        handler = self.consumer_handler(on_consumer_result)
        if wrap_consumer is not None:
            handler = wrap_consumer(handler)
        summary = describe_stream_summary(self.clients.kinesis, self.stack.stream_name)
        stream = StreamInfo(name=self.stack.stream_name, arn=summary.arn, created=summary.created.isoformat())
        # The stream's creation time is in the checkpoints' name: a re-created stream never inherits old ones.
        checkpoints = CheckpointStore(
            state_dir / "checkpoints" if state_dir is not None else None, f"{stream.name}-{stream.created}"
        )
        return EventSourceMapping(
            self.clients,
            stream,
            handler,
            self.stack.consumer,
            event_source_mapping_settings(load_template(), self.stack.parameters),
            checkpoints,
            on_failure_queue_url=self.stack.on_failure_queue_url,
            on_records_done=on_records_done,
            idle_poll_interval=idle_poll_interval,
        )
