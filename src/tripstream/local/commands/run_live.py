"""`tripstream run FILE` against a live `up`: upload, then wait for what `up`'s runtime did with that object.

`up` is live when its heartbeat on the S3 events queue is fresh (local.notifications). Its runtime then runs the
producer and the only consumer of the shards; `run` just uploads and reads the result `up` writes for the object's
(key, ETag) once its consumer caught up, so no second consumer ever reads the same shards.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tripstream.aws.clients import AwsClients
from tripstream.aws.dynamodb import item_count
from tripstream.aws.s3 import get_json, upload_file_and_head
from tripstream.infra.stack import DeployedStack
from tripstream.local.commands.progress import Progress
from tripstream.local.commands.run_summary import RunSummary, summarise_producer
from tripstream.local.lambda_service.s3_notifications import live_runtime_running, result_key


class LiveRuntimeGone(RuntimeError):
    """The live `up` stopped before it reported on the object."""


def run_file_live(
    clients: AwsClients,
    stack: DeployedStack,
    path: Path,
    *,
    key: str | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    poll_seconds: float = 0.2,
) -> RunSummary:
    started = time.monotonic()
    key = key or path.name
    summary = RunSummary(file=str(path), bucket=stack.bucket, key=key)
    _, etag = upload_file_and_head(clients.s3, path, stack.bucket, key)
    result_at = result_key(key, etag)
    checked = time.monotonic()
    while (document := get_json(clients.s3, stack.bucket, result_at)) is None:
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        if time.monotonic() - checked > 10:
            checked = time.monotonic()
            if not live_runtime_running(clients):
                raise LiveRuntimeGone(f"the live `up` stopped before it processed s3://{stack.bucket}/{key}")
        time.sleep(poll_seconds)
    summarise_producer(summary, document.get("results", []))
    summary.producer_invocations = int(document.get("invocations", 0))
    summary.producer_errors = list(document.get("errors", []))
    summary.producer_errors_final = bool(document.get("gave_up"))
    summary.producer_dead_letter_message_id = document.get("dead_letter_message_id")
    # `up`'s consumer caught up with the stream after the producer finished: every record sent was consumed.
    summary.records_consumed = summary.records_sent if document.get("drained") else 0
    progress = progress or Progress()
    for callback, value in (
        (progress.rows_read, summary.rows_read),
        (progress.records_sent, summary.records_sent),
        (progress.records_consumed, summary.records_consumed),
    ):
        if callback is not None:
            callback(value)
    summary.table_items = {name: item_count(clients.dynamodb, table) for name, table in stack.tables.items()}
    summary.seconds = time.monotonic() - started
    return summary
