"""`tripstream run`: one file through the whole pipeline on the local Lambda service, and its summary.

`run_command` is the command's one library call (endpoint, stack, the file, the report); `run_file` is the
pipeline part: upload, the producer on the S3 event, the consumer over the stream until it is drained.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripstream.aws.clients import AwsClients, Credentials
from tripstream.aws.dynamodb import item_count
from tripstream.aws.s3 import upload_file_and_head
from tripstream.infra.stack import DeployedStack
from tripstream.local.commands.options import StackOptions
from tripstream.local.commands.progress import Progress, ProgressDisplay
from tripstream.local.commands.resources import ProcessTreeSampler
from tripstream.local.commands.run_live import run_file_live
from tripstream.local.commands.run_summary import (
    RunSummary,
    record_resources,
    summarise_consumer,
    summarise_producer,
)
from tripstream.local.commands.stack import LocalStack, open_stack
from tripstream.local.lambda_service.async_invocation import Handler
from tripstream.local.lambda_service.events import s3_object_created_event
from tripstream.local.lambda_service.functions import ConsumerTotals, LocalFunctions


@dataclass(frozen=True)
class RunOptions:
    stack: StackOptions
    file: Path
    key: str | None = None
    # The report of the tables after the run (`--report`, `--html`), built while the endpoint is still up.
    report: Callable[[AwsClients, str], dict[str, Any]] | None = None


@dataclass
class RunOutcome:
    summary: RunSummary
    report: dict[str, Any] | None = None


def run_command(
    options: RunOptions,
    *,
    scratch: Path,
    note: Callable[[str], None],
    on_endpoint: Callable[[str], None],
    progress: Callable[[], AbstractContextManager[ProgressDisplay]],
) -> RunOutcome:
    """`tripstream run`: the endpoint (started when embedded), the stack deployed there (or the live `up` that
    serves it), `options.file` through the pipeline, and the report when asked for."""
    with (
        ProcessTreeSampler() as sampler,  # this process and every child (emulator, DynamoDB Local, functions)
        open_stack(options.stack, scratch=scratch, note=note, on_endpoint=on_endpoint, join_live_up=True) as local,
    ):
        with progress() as display:
            summary = _run_on(local, options, display.callbacks(), note)
        record_resources(summary, sampler)
        report = None
        if options.report is not None and not summary.refused:
            report = options.report(local.endpoint.clients, local.endpoint.description)
    return RunOutcome(summary, report)


def _run_on(local: LocalStack, options: RunOptions, progress: Progress, note: Callable[[str], None]) -> RunSummary:
    endpoint = local.endpoint
    if local.served_by_live_up:
        return run_file_live(endpoint.clients, local.stack, options.file, key=options.key, progress=progress)
    return run_file(
        endpoint.clients,
        endpoint.handler_clients,
        local.stack,
        options.file,
        key=options.key,
        state_dir=local.state_dir,
        progress=progress,
        in_process=options.stack.in_process,
        credentials=endpoint.credentials,
        note=note,
    )


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
    wrap_consumer: Callable[[Handler], Handler] | None = None,
    in_process: bool = True,
    credentials: Credentials | None = None,
    note: Callable[[str], None] | None = None,
    functions: LocalFunctions | None = None,
) -> RunSummary:
    """Upload `path`, run the producer on its S3 event and the consumer until the stream is drained.

    The functions run in-process, or isolated (`in_process=False`: with `credentials` as the endpoint's, `note` for
    what the local Lambda service says once); `functions` given are used as they are and left running (warm)."""
    started = time.monotonic()
    key = key or path.name
    summary = RunSummary(file=str(path), bucket=stack.bucket, key=key)
    progress = progress or Progress()
    own_functions = functions is None
    functions = functions or LocalFunctions(
        clients,
        handler_clients,
        stack,
        environment_overrides,
        in_process=in_process,
        credentials=credentials,
        **({"note": note} if note is not None else {}),
    )
    totals = ConsumerTotals()
    on_items = progress.items_written
    try:
        functions.start_environments()
        mapping = functions.event_source_mapping(
            state_dir=state_dir,
            totals=totals,
            on_result=(lambda result: on_items(sum(result.items_written.values()))) if on_items is not None else None,
            on_records_done=progress.records_consumed,
            wrap_consumer=wrap_consumer,
        )
        mapping.start()
        try:
            event = upload_with_event(clients, stack.bucket, path, key, account_id=stack.account_id)
            run = functions.invoke_producer(
                event, on_progress=_producer_progress(progress), timeout_seconds=producer_timeout_seconds
            )
            mapping.producer_finished()
            mapping.wait_drained()
        finally:
            mapping.stop()
    finally:
        if own_functions:
            functions.close()
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
    summarise_consumer(summary, totals)
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
