"""Lambda `lambda-kinesis-consumer`: a Kinesis batch -> the three tables, with partial batch responses."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from tripstream.handlers import observability
from tripstream.handlers.dependencies import Dependencies, lazy_lambda_dependencies
from tripstream.pipeline.consumer import ConsumerResult, StreamRecord, consume_records

logger = Logger(service="tripstream-consumer")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def records_from_event(event: dict[str, Any]) -> list[StreamRecord]:
    """The batch's records; data that is not valid base64 becomes `None` (a reject, never a blocked shard)."""
    records = []
    for record in KinesisStreamEvent(event).records:
        try:
            data: bytes | None = base64.b64decode(record.kinesis.data, validate=True)
        except (binascii.Error, ValueError):
            data = None
        records.append(
            StreamRecord(
                sequence_number=record.kinesis.sequence_number,
                shard_id=record.event_id.split(":", 1)[0],
                data=data,
                partition_key=str(record.kinesis.get("partitionKey") or ""),
            )
        )
    return records


def _remaining_seconds(context: Any) -> Callable[[], float] | None:
    """The invocation's remaining time, from the Lambda context (None: no context, no deadline)."""
    get_remaining = getattr(context, "get_remaining_time_in_millis", None)
    if get_remaining is None:
        return None
    return lambda: float(get_remaining()) / 1000


def make_handler(
    get_dependencies: Callable[[], Dependencies], on_result: Callable[[ConsumerResult], None] | None = None
) -> Handler:
    """The handler; `on_result` lets the local runtime collect the figures of each batch."""

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        deps = get_dependencies()
        records = records_from_event(event)
        result = consume_records(
            deps.clients.dynamodb,
            deps.clients.s3,
            deps.settings,
            records,
            remaining_seconds=_remaining_seconds(context),
        )
        logger.info("batch processed", extra={"result": result.to_dict()})
        failures = []
        if result.first_failed_sequence is not None:
            failures.append({"itemIdentifier": result.first_failed_sequence})
        if on_result is not None:
            on_result(result)
        # Exactly the partial batch response shape Lambda expects (ReportBatchItemFailures).
        return {"batchItemFailures": failures}

    return handle


_lambda_dependencies = lazy_lambda_dependencies()

handler = observability.instrument(
    "consumer", logger, make_handler(_lambda_dependencies, on_result=observability.consumer_hook())
)
