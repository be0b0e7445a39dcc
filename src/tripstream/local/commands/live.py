"""The live local runtime of `tripstream up`: S3 events -> producer, and the stream -> consumer, until stopped.

- Objects: the bucket notifies an SQS queue (local.notifications); worker threads long-poll it and invoke the
  producer as Lambda's asynchronous invocation does (LocalFunctions.invoke_producer: retries, dead-letter queue,
  continuations). A message is deleted only once its invocation is finished (done or given up on).
- Records: one continuous EventSourceMapping on every shard, from its checkpoints, whoever wrote the records.
- What each object gave is written to `tripstream-live/results/...` once the consumer caught up with it, for
  `tripstream run` against a live `up`, and appended to a ledger (key, ETag) in the state folder: at start,
  objects of the bucket missing from the ledger (arrived while `up` was down, or killed mid-file) are processed.
  Once the producer has sent an object's every record, the ledger says so too (with the stream's creation time):
  the stream is kept (`up --state-dir`, or the endpoint's own), so an `up` killed before the consumer caught up
  only waits for it at the next start, without reading and sending the object again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tripstream.aws.clients import AwsClients, Credentials
from tripstream.aws.kinesis import describe_stream_summary
from tripstream.aws.s3 import list_object_entries, put_json
from tripstream.aws.sqs import delete_message, queue_depth, receive_messages
from tripstream.infra.stack import DeployedStack
from tripstream.infra.template import bucket_notification_filters, load_template
from tripstream.local.commands.snapshot import SnapshotInfo, save_snapshot
from tripstream.local.lambda_service.event_source_mapping import STOP_TIMEOUT_SECONDS
from tripstream.local.lambda_service.events import s3_object_created_event
from tripstream.local.lambda_service.functions import LocalFunctions
from tripstream.local.lambda_service.invocation_queue import InvocationQueue
from tripstream.local.lambda_service.s3_notifications import (
    HEARTBEAT_SECONDS,
    RESULTS_PREFIX,
    ObjectEvent,
    beat,
    matches,
    parse_message,
    result_key,
    setup_notifications,
    stop_beating,
)
from tripstream.pipeline.consumer import ConsumerResult

log = logging.getLogger(__name__)
# How long `run` may wait for the consumer to catch up with one object before the result says it did not.
DRAIN_TIMEOUT_SECONDS = 600.0


@dataclass
class ObjectOutcome:
    key: str
    etag: str
    rows_read: int = 0
    records_sent: int = 0
    rows_rejected: int = 0
    refused: str | None = None
    gave_up: bool = False
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    drained: bool = False

    def add_results(self, results: list[dict[str, Any]]) -> None:
        """What the producer's invocations answered for the object."""
        for result in results:
            self.rows_read += result.get("rows_read", 0)
            self.records_sent += result.get("records_sent", 0)
            self.rows_rejected += sum(result.get("rows_rejected", {}).values())
            if result.get("refused"):
                self.refused = str(result["refused"].get("detail"))

    def line(self) -> str:
        if self.refused:
            return f"{self.key}: REFUSED {self.refused} ({self.seconds:.1f} s)"
        text = (
            f"{self.key}: {self.rows_read:,} rows read, {self.records_sent:,} sent, "
            f"{self.rows_rejected:,} rejected ({self.seconds:.1f} s)"
        )
        return text + (f"; GAVE UP after retries: {self.errors[-1]}" if self.gave_up and self.errors else "")


@dataclass
class LiveStatus:
    objects: int
    records_consumed: int
    items_written: int
    iterator_age_ms: int
    dead_letters: int

    def line(self) -> str:
        return (
            f"status: {self.objects:,} objects, {self.records_consumed:,} records consumed, "
            f"{self.items_written:,} items written, iterator age {self.iterator_age_ms / 1000:.1f} s, "
            f"DLQ {self.dead_letters}"
        )


class Ledger:
    """The objects (key, ETag) the live runtime finished, and those whose records were all sent (with what the
    producer answered and the stream they went to): a JSON-lines file in the state folder (or memory)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._done: set[tuple[str, str]] = set()
        self._sent: dict[tuple[str, str], dict[str, Any]] = {}
        if path is not None and path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a line torn by a kill: that object is simply processed again
                if isinstance(entry.get("sent"), dict):
                    self._sent[(entry["key"], entry["etag"])] = entry["sent"]
                else:
                    self._done.add((entry["key"], entry["etag"]))

    def __contains__(self, item: tuple[str, str]) -> bool:
        with self._lock:
            return item in self._done

    def add(self, key: str, etag: str) -> None:
        with self._lock:
            self._done.add((key, etag))
            self._append({"key": key, "etag": etag})

    def sent(self, key: str, etag: str, stream: str) -> dict[str, Any] | None:
        """What the producer answered for the object, if it sent all its records to this very `stream` and the
        object is not done (an object uploaded again once done is read and sent again, as the first time)."""
        with self._lock:
            produced = None if (key, etag) in self._done else self._sent.get((key, etag))
        return produced if produced is not None and produced.get("stream") == stream else None

    def add_sent(self, key: str, etag: str, produced: dict[str, Any]) -> None:
        with self._lock:
            self._sent[(key, etag)] = produced
            self._append({"key": key, "etag": etag, "sent": produced})

    def _append(self, entry: dict[str, Any]) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("ab") as out:
                out.write(orjson.dumps(entry) + b"\n")


class LiveRuntime:
    def __init__(
        self,
        clients: AwsClients,
        handler_clients: AwsClients,
        stack: DeployedStack,
        *,
        state_dir: Path | None = None,
        on_object: Callable[[ObjectOutcome], None] | None = None,
        persist: Callable[[], object] | None = None,
        workers: int = 2,
        functions_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._clients = clients
        self._stack = stack
        self._state_dir = state_dir
        self._on_object = on_object
        # Saves the emulator's data (the snapshot, with --state-dir) when an object arrives and when it is done:
        # an embedded emulator dies with `up`, and a kill -9 must lose neither the object nor its items.
        self._persist = persist
        self._workers = workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy: set[threading.Event] = set()  # one per object in flight, set when it is over
        self._items_written = 0
        self._objects = 0
        self._lock = threading.Lock()
        self.save_lock = threading.Lock()  # one snapshot at a time (`up` takes it for its final save too)
        self._ledger = Ledger(state_dir / "live" / "ledger.jsonl" if state_dir is not None else None)
        template = load_template()
        self._filters = bucket_notification_filters(template)
        # How the functions run (LocalFunctions' in_process, credentials, note); in-process by default.
        self._functions = LocalFunctions(clients, handler_clients, stack, **(functions_options or {}))
        self._rejects_prefix = self._functions.settings(stack.producer).rejects_prefix
        self.mapping = self._functions.event_source_mapping(
            state_dir=state_dir,
            on_result=self._consumed,
            idle_poll_interval=1.0,  # as Lambda, which polls an idle shard about once a second
        )
        self._queue_url = ""
        # The stream the records go to, as the ledger names it (a stream created again is another one).
        summary = describe_stream_summary(clients.kinesis, stack.stream_name)
        self._stream_id = f"{stack.stream_name}@{summary.created.isoformat()}"

    def _consumed(self, result: ConsumerResult) -> None:
        with self._lock:
            self._items_written += sum(result.items_written.values())

    # -- lifecycle

    def start(self) -> None:
        """Start consuming, point the bucket at the events queue, then catch up with objects not in the ledger."""
        self.mapping.start()
        # A message stays invisible while its object is processed: the producer's whole timeout, and then some.
        visibility = int(self._stack.producer.timeout_seconds) + 60
        self._queue_url, _ = setup_notifications(
            self._clients, self._stack.bucket, self._filters, visibility_timeout=visibility
        )
        beat(self._clients, self._queue_url)
        missed = [
            entry
            for entry in list_object_entries(self._clients.s3, self._stack.bucket)
            if self._wanted(entry.key) and (entry.key, entry.etag) not in self._ledger
        ]
        self._spawn("live-catch-up", lambda: self._catch_up(missed))
        for index in range(self._workers):
            self._spawn(f"live-s3-events-{index}", self._serve)
        self._spawn("live-heartbeat", self._heartbeat)
        if (invocations := self._functions.asynchronous_invocations()) is not None:
            self._spawn("live-async-invocations", lambda: self._run_unclaimed(invocations))

    def _run_unclaimed(self, invocations: InvocationQueue) -> None:
        """Lambda runs every asynchronous invocation: what nobody here asked for (a user's own `aws lambda invoke
        --invocation-type Event` of the producer; a continuation whose taker is gone) is run too, with the
        producer's retries and dead-letter queue, and gets its line."""
        while not self._stop.is_set():
            try:
                invocation = invocations.take_unclaimed()
            except Exception as error:  # the emulator stopping, or a broken queue: said, then tried again
                log.warning("reading the asynchronous invocations failed: %s", error)
                self._stop.wait(1.0)
                continue
            if invocation is None:
                continue
            if invocation.function_name != self._stack.producer.name:
                log.warning(
                    "an asynchronous invocation of %s was dropped: locally only the producer's are run",
                    invocation.function_name,
                )
                continue
            started = time.monotonic()
            run = self._functions.invoke_producer(invocation.payload, stop=self._stop)
            if run.stopped:  # not run to its end: queued again, as a stopped service leaves an invocation
                try:
                    invocations.put_back(invocation)
                except Exception as error:
                    log.warning("an unfinished asynchronous invocation could not be queued again: %s", error)
                return
            outcome = ObjectOutcome(key=f"asynchronous invocation of {invocation.function_name}", etag="")
            outcome.add_results(run.results)
            outcome.gave_up, outcome.errors = run.gave_up, run.errors
            outcome.seconds = time.monotonic() - started
            if self._on_object is not None:
                self._on_object(outcome)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """The producer in flight ends at its next budget check (no time remains), the mapping's pollers after
        their invocation; waits for both (at most `timeout` s). An unfinished object stays out of the ledger, and
        its message comes back: it is processed again next time. A worker in a long poll of the events queue
        ends when the poll does, without processing what it received."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        self.mapping.stop(timeout)
        with self._lock:
            in_flight = list(self._busy)
        for busy in in_flight:
            busy.wait(max(0.0, deadline - time.monotonic()))
        self._functions.close()
        try:
            stop_beating(self._clients, self._queue_url)
        except Exception as error:  # the emulator may be gone already
            log.debug("heartbeat not cleared: %s", error)

    def status(self) -> LiveStatus:
        dead = 0
        for name in ("ProducerDeadLetterQueueUrl", "OnFailureQueueUrl"):
            if url := self._stack.outputs.get(name):
                try:
                    dead += queue_depth(self._clients.sqs, url)
                except Exception as error:
                    log.debug("queue depth of %s: %s", name, error)
        with self._lock:
            return LiveStatus(
                objects=self._objects,
                records_consumed=self.mapping.stats.records_done,
                items_written=self._items_written,
                iterator_age_ms=self.mapping.iterator_age_ms(),
                dead_letters=dead,
            )

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                beat(self._clients, self._queue_url)
            except Exception as error:
                log.warning("heartbeat failed: %s", error)

    def _wanted(self, key: str) -> bool:
        # Never the runtime's own output, whatever the filters say (a filter-less notification would loop).
        own = key.startswith(RESULTS_PREFIX) or key.startswith(self._rejects_prefix)
        return not own and matches(key, self._filters)

    # -- objects

    def _save(self) -> None:
        if self._persist is not None:
            with self.save_lock:
                self._persist()

    def _catch_up(self, entries: list[Any]) -> None:
        for entry in entries:
            if self._stop.is_set():
                return
            event = s3_object_created_event(
                bucket=self._stack.bucket,
                key=entry.key,
                size=entry.size,
                etag=entry.etag,
                region=self._clients.region,
                account_id=self._stack.account_id,
                sequencer=f"{time.time_ns():X}",
            )
            self._process(ObjectEvent(key=entry.key, etag=entry.etag, event=event))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                messages = receive_messages(self._clients.sqs, self._queue_url, wait_seconds=20)
            except Exception as error:
                if self._stop.is_set():
                    return
                log.warning("receiving S3 events failed: %s", error)
                self._stop.wait(1.0)
                continue
            if self._stop.is_set():
                return  # not processed, not deleted: they come back after their visibility timeout
            for message in messages:
                for item in parse_message(message.body):
                    # A message seen before was being processed by an `up` that stopped: done already?
                    if message.receive_count > 1 and (item.key, item.etag) in self._ledger:
                        continue
                    if self._wanted(item.key):
                        self._save()
                        self._process(item)
                if self._stop.is_set():
                    return  # not deleted: it comes back after its visibility timeout
                try:
                    delete_message(self._clients.sqs, self._queue_url, message.receipt_handle)
                except Exception as error:
                    log.warning("deleting an S3 event message failed: %s", error)

    def _process(self, item: ObjectEvent) -> None:
        """Invoke the producer for one object; never raises (a crash of the handler never stops the runtime)."""
        over = threading.Event()
        with self._lock:
            if self._stop.is_set():
                return
            self._busy.add(over)
        try:
            self._process_object(item)
        finally:
            over.set()
            with self._lock:
                self._busy.discard(over)

    def _produce(self, item: ObjectEvent) -> dict[str, Any]:
        """The producer invoked for the object; or, when an earlier `up` saw it send every record to this stream,
        what it answered then (the records are in the stream, consumed from the checkpoints)."""
        produced = self._ledger.sent(item.key, item.etag, self._stream_id)
        if produced is not None:
            log.info("%s: sent before the restart; its records are consumed from the stream", item.key)
            return produced
        run = self._functions.invoke_producer(item.event, stop=self._stop)
        produced = {
            "results": run.results,
            "invocations": run.invocations,
            "errors": run.errors,
            "gave_up": run.gave_up,
            "dead_letter_message_id": run.dead_letter_message_id,
            "stream": self._stream_id,
        }
        if not self._stop.is_set() and not run.gave_up:  # every record sent: never sent again
            self._ledger.add_sent(item.key, item.etag, produced)
        return produced

    def _process_object(self, item: ObjectEvent) -> None:
        started = time.monotonic()
        outcome = ObjectOutcome(key=item.key, etag=item.etag)
        document: dict[str, Any] = {"key": item.key, "etag": item.etag}
        try:
            document |= self._produce(item)
            sent = time.monotonic()
            outcome.drained = self.mapping.wait_caught_up(sent, DRAIN_TIMEOUT_SECONDS)
            outcome.add_results(document["results"])
            outcome.gave_up, outcome.errors = document["gave_up"], document["errors"]
        except Exception as error:
            log.exception("processing %s failed", item.key)
            outcome.gave_up, outcome.errors = True, [f"{type(error).__name__}: {error}"]
            document |= {"results": [], "invocations": 0, "errors": outcome.errors, "gave_up": True}
        outcome.seconds = time.monotonic() - started
        if self._stop.is_set() and not outcome.drained:
            # Stopped mid-object: its records may not all be consumed, so it stays out of the ledger and is
            # processed again at the next start (idempotent writes).
            log.warning("%s: stopped before it was fully consumed; it is processed again at the next start", item.key)
            return
        document |= {"drained": outcome.drained, "seconds": outcome.seconds}
        # The object's line first: whoever sees its result document (a client polling the bucket) sees the line too.
        with self._lock:
            self._objects += 1
        if self._on_object is not None:
            self._on_object(outcome)
        try:
            put_json(self._clients.s3, self._stack.bucket, result_key(item.key, item.etag), document)
            self._save()
            self._ledger.add(item.key, item.etag)
        except Exception as error:
            log.warning("recording the result of %s failed: %s", item.key, error)


def serve_live(
    clients: AwsClients,
    handler_clients: AwsClients,
    stack: DeployedStack,
    stop: threading.Event,
    *,
    echo: Callable[[str], None],
    state_dir: Path | None = None,
    snapshot: bool = True,
    status_seconds: float = 5.0,
    on_status: Callable[[str], None] | None = None,
    in_process: bool = True,
    credentials: Credentials | None = None,
) -> SnapshotInfo | None:
    """`up`'s loop: the live runtime until `stop` is set, a line per object and a status line when it changed (or
    every `status_seconds` to `on_status`, which redraws it in place);
    with `state_dir` (and `snapshot`: an embedded emulator), the snapshot saved at the end (returned)."""

    def persist() -> SnapshotInfo:
        assert state_dir is not None
        return save_snapshot(clients, stack, state_dir)

    runtime = LiveRuntime(
        clients,
        handler_clients,
        stack,
        state_dir=state_dir,
        on_object=lambda outcome: echo(outcome.line()),
        persist=persist if state_dir is not None and snapshot else None,
        functions_options={"in_process": in_process, "credentials": credentials, "note": echo},
    )
    runtime.start()
    echo(f"live: S3 events of s3://{stack.bucket} reach the producer, {stack.stream_name} the consumer")
    last = None
    while not stop.wait(status_seconds):
        line = runtime.status().line()
        if on_status is not None:  # a terminal: one status line, redrawn in place
            on_status(line)
        elif line != last:  # plain lines: an idle `up` stays quiet
            echo(line)
            last = line
    runtime.stop()
    if state_dir is None or not snapshot:
        return None
    with runtime.save_lock:
        return persist()
