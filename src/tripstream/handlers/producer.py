"""Lambda `lambda-kinesis-producer`: an S3 ObjectCreated event (or a continuation) -> Kinesis records."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from tripstream.aws.kinesis import RecordsNotSent
from tripstream.aws.lambda_ import invoke_async
from tripstream.handlers import observability
from tripstream.handlers.dependencies import Dependencies, lazy_lambda_dependencies
from tripstream.pipeline.producer import ProducerResult, produce_object
from tripstream.trips.readers import ResumePoint

logger = Logger(service="tripstream-producer")
CONTINUATION = "tripstream_continuation"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def jobs_from_event(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object of the event: all S3 records (keys arrive URL-encoded), or a continuation's jobs."""
    if CONTINUATION in event:
        return list(event[CONTINUATION])
    jobs = []
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        jobs.append(
            {
                "bucket": s3["bucket"]["name"],
                "key": unquote_plus(s3["object"]["key"]),
                "etag": s3["object"].get("eTag"),
            }
        )
    return jobs


def _row_deltas(on_progress: Callable[[int, int], None] | None) -> Callable[[int, int], None] | None:
    """produce_object reports (rows read so far in this job, records sent since the last call): make both deltas."""
    if on_progress is None:
        return None
    rows_before = 0

    def report(rows_read: int, records_sent: int) -> None:
        nonlocal rows_before
        on_progress(rows_read - rows_before, records_sent)
        rows_before = rows_read

    return report


def make_handler(
    get_dependencies: Callable[[], Dependencies], on_progress: Callable[[int, int], None] | None = None
) -> Handler:
    """`on_progress(rows_read, records_sent)`, both increments, is the local runtime's live progress hook."""

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        deps = get_dependencies()
        settings, clients = deps.settings, deps.clients
        jobs = jobs_from_event(event)
        results: list[ProducerResult] = []
        pending: list[dict[str, Any]] = []
        for job in jobs:
            if pending:  # time already ran out: the rest goes to the follow-up untouched
                pending.append(job)
                continue
            resume = job.get("resume")
            etag = job.get("etag")
            logger.append_keys(source_key=job["key"], bucket=job["bucket"])
            try:
                result = produce_object(
                    clients.s3,
                    clients.kinesis,
                    settings,
                    job["bucket"],
                    job["key"],
                    etag=f'"{etag.strip(chr(34))}"' if etag else None,
                    resume=ResumePoint(**resume) if resume else None,
                    remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
                    on_progress=_row_deltas(on_progress),
                )
            except RecordsNotSent as error:
                # Fail the invocation, so that Lambda retries the event: never report success with records missing.
                logger.error(
                    "records not sent",
                    extra={
                        "records_not_sent": error.count,
                        "records_sent": error.sent,
                        "rows_read": error.rows_read,
                        "reason": error.reason,
                    },
                )
                raise
            results.append(result)
            log = logger.error if result.refused else logger.info
            log(
                "object processed" if not result.refused else "file refused",
                extra={"result": result.to_dict()},
            )
            if result.resume is not None:
                pending.append({**job, "etag": result.etag, "resume": result.resume})
        response: dict[str, Any] = {"results": [r.to_dict() for r in results]}
        if pending:
            continuation = {CONTINUATION: pending}
            if settings.continuation_mode == "invoke":
                invoke_async(clients.lambda_, context.invoked_function_arn, json.dumps(continuation).encode())
                logger.info("continuing in a follow-up invocation", extra={"jobs": len(pending)})
            response["continuation"] = continuation
        return response

    return handle


_lambda_dependencies = lazy_lambda_dependencies()

handler = observability.instrument("producer", logger, make_handler(_lambda_dependencies))
