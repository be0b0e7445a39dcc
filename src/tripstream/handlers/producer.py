"""Lambda `lambda-kinesis-producer`: an S3 ObjectCreated event (or a continuation) -> Kinesis records."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event

from tripstream.aws.kinesis import RecordsNotSent
from tripstream.aws.lambda_ import invoke_async
from tripstream.handlers import observability
from tripstream.handlers.dependencies import Dependencies, lazy_lambda_dependencies
from tripstream.pipeline.producer import CONTINUATION, ProducerResult, produce_event

logger = Logger(service="tripstream-producer")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def jobs_from_event(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Every created object of the event (S3 sends keys URL-encoded), or a continuation's jobs."""
    if CONTINUATION in event:
        return list(event[CONTINUATION])
    return [
        {
            "bucket": record.s3.bucket.name,
            "key": unquote_plus(record.s3.get_object.key),
            "etag": record.s3.get_object.etag,
        }
        for record in S3Event(event).records
        if record.event_name.startswith("ObjectCreated")
    ]


def _log_result(result: ProducerResult) -> None:
    # Keys of this line only: appended keys would stay on the logger and name this object in the next one's lines.
    extra = {"source_key": result.key, "bucket": result.bucket, "result": result.to_dict()}
    if result.refused:
        logger.error("file refused", extra=extra)
    else:
        logger.info("object processed", extra=extra)


def make_handler(
    get_dependencies: Callable[[], Dependencies], on_progress: Callable[[int, int], None] | None = None
) -> Handler:
    """`on_progress(rows_read, records_sent)`, both increments, is the local runtime's live progress hook."""

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        deps = get_dependencies()
        try:
            outcome = produce_event(
                deps.clients.s3,
                deps.clients.kinesis,
                deps.settings,
                jobs_from_event(event),
                remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
                on_progress=on_progress,
                on_result=_log_result,
            )
        except RecordsNotSent as error:
            # Fail the invocation, so that Lambda retries the event: never report success with records missing.
            not_sent = {"records_not_sent": error.count, "records_sent": error.sent, "rows_read": error.rows_read}
            logger.error("records not sent", extra={**not_sent, "reason": error.reason})
            raise
        if outcome.pending and deps.settings.continuation_mode == "invoke":
            continuation = json.dumps({CONTINUATION: outcome.pending}).encode()
            invoke_async(deps.clients.lambda_, context.invoked_function_arn, continuation)
            logger.info("continuing in a follow-up invocation", extra={"jobs": len(outcome.pending)})
        return outcome.response()

    return handle


def _log_progress(rows_read: int, records_sent: int) -> None:
    # Increments, every 2,000 rows of an object and at its end (pipeline.producer): a long object seen advancing in
    # the log (the local Lambda service's progress display reads these lines as the function prints them).
    logger.info("progress", extra={"rows_read": rows_read, "records_sent": records_sent})


_lambda_dependencies = lazy_lambda_dependencies()

handler = observability.instrument("producer", logger, make_handler(_lambda_dependencies, on_progress=_log_progress))
