"""One file through the whole pipeline on the local runtime: upload, produce, consume, summarise."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripstream.aws.clients import AwsClients
from tripstream.aws.cloudformation import DeployError, describe_stack, outputs_of
from tripstream.aws.dynamodb import item_count
from tripstream.aws.kinesis import describe_stream_summary
from tripstream.aws.lambda_ import FunctionInfo, function_info
from tripstream.aws.s3 import upload_file_and_head
from tripstream.aws.sts import account_id
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers import producer as producer_handler
from tripstream.handlers.dependencies import Dependencies
from tripstream.infra.template import event_source_mapping_settings, load_template
from tripstream.local.checkpoints import CheckpointStore
from tripstream.local.events import s3_object_created_event
from tripstream.local.runtime import (
    EventSourceMapping,
    StreamInfo,
    invoke_producer,
)
from tripstream.pipeline.consumer import ConsumerResult
from tripstream.settings import Settings


@dataclass(frozen=True)
class DeployedStack:
    """What the local runtime needs of a deployed stack."""

    outputs: dict[str, str]
    parameters: dict[str, str]
    producer: FunctionInfo
    consumer: FunctionInfo
    account_id: str

    @property
    def bucket(self) -> str:
        return self.outputs["BucketName"]

    @property
    def stream_name(self) -> str:
        return self.outputs["StreamName"]

    @property
    def tables(self) -> dict[str, str]:
        return {
            "high_value_trips": self.outputs["HighValueTableName"],
            "trip_duration_analysis": self.outputs["DurationTableName"],
            "distance_to_fare_ratio": self.outputs["FareRatioTableName"],
        }

    @property
    def aggregate_tables(self) -> dict[str, str]:
        """zone_hourly_stats and its per-trip markers (absent from a stack deployed before they existed)."""
        names = {
            "zone_hourly_stats": self.outputs.get("ZoneHourlyStatsTableName", ""),
            "zone_hourly_counted_trips": self.outputs.get("CountedTripsTableName", ""),
        }
        return {key: name for key, name in names.items() if name}


def read_stack(clients: AwsClients, stack_name: str) -> DeployedStack:
    stack = describe_stack(clients.cloudformation, stack_name)
    if stack is None:
        raise DeployError(f"stack {stack_name} does not exist", stack_name=stack_name)
    outputs = outputs_of(stack)
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return DeployedStack(
        outputs=outputs,
        parameters=parameters,
        producer=function_info(clients.lambda_, outputs["ProducerFunctionName"]),
        consumer=function_info(clients.lambda_, outputs["ConsumerFunctionName"]),
        account_id=account_id(clients.sts),
    )


@dataclass
class RunSummary:
    file: str
    bucket: str
    key: str
    format: str | None = None
    service: str | None = None
    refused: str | None = None
    rows_read: int = 0
    records_sent: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    blank_lines: int = 0
    producer_invocations: int = 0
    producer_errors: list[str] = field(default_factory=list)
    # The producer gave up on the event and it went to the producer's dead-letter queue (its SQS message id).
    producer_dead_letter_message_id: str | None = None
    records_consumed: int = 0
    trips_processed: int = 0
    records_rejected: dict[str, int] = field(default_factory=dict)
    items_written: dict[str, int] = field(default_factory=dict)
    table_items: dict[str, int] = field(default_factory=dict)
    duration_categories: dict[str, int] = field(default_factory=dict)
    consumer_invocations: int = 0
    consumer_retries: int = 0
    records_to_on_failure: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    rejects_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.refused is None and not self.producer_errors_final and self.records_to_on_failure == 0

    producer_errors_final: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Progress:
    """Callbacks for live progress (all optional)."""

    rows_read: Callable[[int], None] | None = None
    records_sent: Callable[[int], None] | None = None
    records_consumed: Callable[[int], None] | None = None
    items_written: Callable[[int], None] | None = None


def upload_with_event(
    clients: AwsClients, bucket: str, path: Path, key: str, *, account_id: str = "123456789012"
) -> dict[str, Any]:
    """Upload a file, and the ObjectCreated event S3 would send for it (what the bucket notification delivers)."""
    size, etag = upload_file_and_head(clients.s3, path, bucket, key)
    return s3_object_created_event(
        bucket=bucket,
        key=key,
        size=size,
        etag=etag,
        region=clients.region,
        account_id=account_id,
        sequencer=f"{time.time_ns():X}",
    )


def handler_settings(function: FunctionInfo, overrides: Mapping[str, str] | None = None) -> Settings:
    """The settings a handler would read in Lambda: its function's environment (plus test overrides)."""
    environment = {**function.environment, "CONTINUATION_MODE": "return", **(overrides or {})}
    return Settings.from_env(environment)


def run_file(
    clients: AwsClients,
    handler_clients: AwsClients,
    stack: DeployedStack,
    path: Path,
    *,
    key: str | None = None,
    state_dir: Path | None = None,
    environment_overrides: Mapping[str, str] | None = None,
    producer_timeout_seconds: float | None = None,
    progress: Progress | None = None,
    wrap_consumer: Callable[[consumer_handler.Handler], consumer_handler.Handler] | None = None,
) -> RunSummary:
    """Upload `path`, run the producer on its S3 event and the consumer until the stream is drained."""
    started = time.monotonic()
    key = key or path.name
    summary = RunSummary(file=str(path), bucket=stack.bucket, key=key)
    producer_deps = Dependencies(handler_clients, handler_settings(stack.producer, environment_overrides))
    consumer_deps = Dependencies(handler_clients, handler_settings(stack.consumer, environment_overrides))
    progress = progress or Progress()

    stream_summary = describe_stream_summary(clients.kinesis, stack.stream_name)
    stream = StreamInfo(name=stack.stream_name, arn=stream_summary.arn, created=stream_summary.created.isoformat())
    checkpoints = CheckpointStore(
        state_dir / "checkpoints" if state_dir is not None else None,
        f"{stream.name}-{stream.created}",
    )
    consumer_results: list[ConsumerResult] = []

    def on_consumer_result(result: ConsumerResult) -> None:
        consumer_results.append(result)
        if progress.items_written is not None:
            progress.items_written(sum(result.items_written.values()))

    handler = consumer_handler.make_handler(lambda: consumer_deps, on_consumer_result)
    if wrap_consumer is not None:
        handler = wrap_consumer(handler)
    mapping = EventSourceMapping(
        clients,
        stream,
        handler,
        stack.consumer,
        event_source_mapping_settings(load_template(), stack.parameters),
        checkpoints,
        on_failure_queue_url=stack.outputs.get("OnFailureQueueUrl"),
        on_records_done=progress.records_consumed,
    )
    mapping.start()
    try:
        event = upload_with_event(clients, stack.bucket, path, key, account_id=stack.account_id)
        run = invoke_producer(
            producer_handler.make_handler(lambda: producer_deps, on_progress=_producer_progress(progress)),
            event,
            stack.producer,
            timeout_seconds=producer_timeout_seconds,
            sqs=clients.sqs,
            dead_letter_queue_url=stack.outputs.get("ProducerDeadLetterQueueUrl"),
        )
        mapping.producer_finished()
        mapping.wait_drained()
    finally:
        mapping.stop()
    summarise_producer(summary, run.results)
    summary.producer_invocations = run.invocations
    summary.producer_errors = run.errors
    summary.producer_errors_final = run.gave_up
    if run.gave_up:  # the rows the last attempt did read and send before failing are in the stream
        summary.rows_read += run.last_failure_rows_read
        summary.records_sent += run.last_failure_records_sent
    summary.producer_dead_letter_message_id = run.dead_letter_message_id
    if run.failed_invocations:
        # Failed invocations are retried whole: what they had sent is in the stream twice (idempotent downstream).
        summary.retries["producer_failed_invocations"] = run.failed_invocations
        summary.retries["producer_records_sent_by_failed_invocations"] = run.records_sent_by_failed_invocations
    _summarise_consumer(summary, consumer_results)
    summary.consumer_invocations = mapping.stats.invocations
    summary.consumer_retries = mapping.stats.function_errors + mapping.stats.partial_failures
    summary.records_to_on_failure = mapping.stats.records_to_on_failure
    summary.table_items = {name: item_count(clients.dynamodb, table) for name, table in stack.tables.items()}
    summary.seconds = time.monotonic() - started
    return summary


def _producer_progress(progress: Progress) -> Callable[[int, int], None] | None:
    if progress.rows_read is None and progress.records_sent is None:
        return None

    def on_progress(rows_read: int, records_sent: int) -> None:
        if progress.rows_read is not None:
            progress.rows_read(rows_read)
        if progress.records_sent is not None:
            progress.records_sent(records_sent)

    return on_progress


def summarise_producer(summary: RunSummary, results: list[dict[str, Any]]) -> None:
    rejected: Counter[str] = Counter()
    for result in results:
        summary.format = summary.format or result.get("format")
        summary.service = summary.service or result.get("service")
        if result.get("refused"):
            summary.refused = result["refused"]["detail"]
        summary.rows_read += result["rows_read"]
        summary.records_sent += result["records_sent"]
        summary.blank_lines += result["blank_lines"]
        rejected.update(result["rows_rejected"])
        summary.rejects_keys.extend(result["rejects_keys"])
        for name in ("entries_retried", "calls_retried"):
            summary.retries[f"producer_{name}"] = summary.retries.get(f"producer_{name}", 0) + result[name]
    summary.rows_rejected = dict(sorted(rejected.items()))


def _summarise_consumer(summary: RunSummary, results: list[ConsumerResult]) -> None:
    rejected: Counter[str] = Counter()
    written: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for result in results:
        done = result.records_received if result.first_failed_sequence is None else None
        summary.trips_processed += result.trips_processed
        summary.records_consumed += (
            done if done is not None else result.trips_processed + sum(result.records_rejected.values())
        )
        rejected.update(result.records_rejected)
        written.update(result.items_written)
        categories.update(result.duration_categories)
        summary.retries["consumer_unprocessed_items_retried"] = (
            summary.retries.get("consumer_unprocessed_items_retried", 0) + result.unprocessed_retried
        )
        summary.retries["consumer_calls_retried"] = (
            summary.retries.get("consumer_calls_retried", 0) + result.calls_retried
        )
        if result.rejects_key:
            summary.rejects_keys.append(result.rejects_key)
    summary.records_rejected = dict(sorted(rejected.items()))
    summary.items_written = dict(sorted(written.items()))
    summary.duration_categories = {c: categories.get(c, 0) for c in ("short", "medium", "long")}
