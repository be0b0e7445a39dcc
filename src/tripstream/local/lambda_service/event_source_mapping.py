"""The consumer's Kinesis event source mapping, done on this machine against any endpoint.

One poller per shard from TRIM_HORIZON (or its checkpoint), batches delivered with the mapping's settings read
from the template, `batchItemFailures` honoured by re-delivering from the first failed record, bisect on function
errors, bounded retries, record age, and the on-failure SQS destination.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from tripstream.aws.clients import AwsClients
from tripstream.aws.errors import error_code, is_transient
from tripstream.aws.kinesis import get_records, list_shard_ids, shard_iterator
from tripstream.aws.lambda_ import FunctionInfo
from tripstream.aws.sqs import send_message
from tripstream.counters import Counters
from tripstream.infra.template import EventSourceMappingSettings
from tripstream.local.lambda_service.checkpoints import CheckpointStore
from tripstream.local.lambda_service.context import LocalLambdaContext
from tripstream.local.lambda_service.events import kinesis_event
from tripstream.pipeline.consumer import ConsumerResult

log = logging.getLogger(__name__)
# How long `stop` waits for the pollers' invocations in flight (each is told no time remains: it ends soon).
STOP_TIMEOUT_SECONDS = 4.0
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class ConsumerStats(Counters):
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    records_delivered: int = 0
    records_done: int = 0
    batches_to_on_failure: int = 0
    records_to_on_failure: int = 0
    read_errors: int = 0
    results: list[ConsumerResult] = field(default_factory=list)

    def record(self, result: ConsumerResult) -> None:
        with self._lock:
            self.results.append(result)


@dataclass
class StreamInfo:
    name: str
    arn: str
    created: str


class EventSourceMapping:
    """The local stand-in for the consumer's Kinesis event source mapping."""

    def __init__(
        self,
        clients: AwsClients,
        stream: StreamInfo,
        handler: Handler,
        function: FunctionInfo,
        settings: EventSourceMappingSettings,
        checkpoints: CheckpointStore,
        *,
        on_failure_queue_url: str | None,
        poll_interval: float = 0.05,
        retry_delay: float = 0.05,
        on_records_done: Callable[[int], None] | None = None,
        idle_poll_interval: float | None = None,
    ) -> None:
        self._clients = clients
        self._stream = stream
        self._handler = handler
        self._function = function
        self._settings = settings
        self._checkpoints = checkpoints
        self._queue_url = on_failure_queue_url
        self._poll_interval = poll_interval
        self._retry_delay = retry_delay
        self._on_records_done = on_records_done
        # Under `up` the mapping runs for ever: an idle shard is polled less and less often, up to this.
        self._idle_poll_interval = max(poll_interval, idle_poll_interval or poll_interval)
        self._caught_up: dict[str, float] = {}  # shard -> start (monotonic) of its last empty read, 0 behind
        self._behind: dict[str, int] = {}  # shard -> MillisBehindLatest of its last read
        self._producer_done = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # One per poller, set when it returned. Not Thread.join: on Python 3.11 a join interrupted by a signal
        # (KeyboardInterrupt) marks the thread finished while it still runs, and later joins return at once.
        self._finished: list[threading.Event] = []
        self._errors: list[BaseException] = []
        self.stats = ConsumerStats()

    # -- lifecycle

    def start(self) -> None:
        for shard_id in list_shard_ids(self._clients.kinesis, self._stream.name):
            finished = threading.Event()
            thread = threading.Thread(
                target=self._run_shard, args=(shard_id, finished), name=f"esm-{shard_id}", daemon=True
            )
            self._finished.append(finished)
            self._threads.append(thread)
            thread.start()

    def producer_finished(self) -> None:
        """From now on, a shard that reads empty and is not behind is drained."""
        self._producer_done.set()

    def wait_drained(self, timeout: float | None = None) -> bool:
        drained = self._wait_finished(timeout)
        if self._errors:
            raise RuntimeError(f"event source mapping failed: {self._errors[0]}") from self._errors[0]
        return drained

    def _wait_finished(self, timeout: float | None) -> bool:
        """Wait until every poller returned (True), or `timeout` seconds (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for finished in self._finished:
            # In slices: a signal's handler (Ctrl-C, SIGTERM) runs in the main thread between two waits.
            while not finished.wait(0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic()))):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        return True

    def wait_caught_up(self, since: float, timeout: float | None = None) -> bool:
        """Wait until every shard read empty, 0 behind, in a read that started after `since` (monotonic):
        every record written before `since` was then delivered and checkpointed (for a continuous mapping)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            alive = [
                t.name.removeprefix("esm-")
                for t, finished in zip(self._threads, self._finished, strict=True)
                if not finished.is_set()
            ]
            if all(self._caught_up.get(shard, -1.0) >= since for shard in alive):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return False

    def iterator_age_ms(self) -> int:
        """The largest MillisBehindLatest of the shards' last reads."""
        return max(self._behind.values(), default=0)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Stop every poller: none starts another read or invocation, the invocations in flight are told no time
        remains, and records not done are not checkpointed (the next start delivers them again). True when every
        poller returned within `timeout` seconds."""
        self._stop.set()
        stopped = self._wait_finished(timeout)
        if not stopped:
            log.warning("the event source mapping's pollers did not stop within %.0f s", timeout)
        return stopped

    # -- one shard

    def _run_shard(self, shard_id: str, finished: threading.Event) -> None:
        try:
            self._poll(shard_id)
        except BaseException as error:  # surfaced by wait_drained
            if self._stop.is_set():
                log.debug("poller of %s ended while stopping: %s", shard_id, error)
            else:
                log.exception("poller of %s failed", shard_id)
                self._errors.append(error)
        finally:
            finished.set()

    def _open(self, shard_id: str) -> str | None:
        """A shard iterator just after the shard's checkpoint (TRIM_HORIZON without one); read errors retried."""
        failures = 0
        while True:
            try:
                return shard_iterator(
                    self._clients.kinesis, self._stream.name, shard_id, self._checkpoints.get(shard_id)
                )
            except Exception as error:
                failures += 1
                if not is_transient(error) or self._stop.is_set():
                    raise
                self._pause_after_read_error(shard_id, error, failures)

    def _pause_after_read_error(self, shard_id: str, error: BaseException, failures: int) -> None:
        log.warning("reading %s failed (%s), retrying", shard_id, error)
        self.stats.add(read_errors=1)
        self._stop.wait(min(1.0, self._poll_interval * 2 ** min(failures, 6)))

    def _poll(self, shard_id: str) -> None:
        iterator = self._open(shard_id)
        failures = idle = 0
        ahead: Future[_Read] | None = None
        while not self._stop.is_set() and iterator is not None:
            try:
                read = ahead.result() if ahead is not None else self._read(shard_id, iterator, idle)
            except Exception as error:
                # Like Lambda's pollers: a throttled/failed read or an expired iterator is retried, from the
                # checkpoint (the records read so far were not delivered yet, so nothing is skipped).
                failures += 1
                if not (is_transient(error) or error_code(error) == "ExpiredIteratorException"):
                    raise
                self._pause_after_read_error(shard_id, error, failures)
                ahead = None
                iterator = self._open(shard_id)
                continue
            failures, idle, iterator, ahead = 0, read.idle, read.next_iterator, None
            if read.records:
                idle = 0
                if iterator is not None:
                    # Like Lambda's pollers, the next batch is read while this one is delivered: the function
                    # does not wait for a read, and the endpoint has work while the function computes.
                    ahead = _read_ahead(functools.partial(self._read, shard_id, iterator, 0), f"esm-read-{shard_id}")
                if not self._deliver(shard_id, read.records):
                    return  # stopping: not checkpointed, delivered again at the next start
            elif read.producer_done and read.behind == 0:
                return
            else:
                if read.behind == 0:
                    self._caught_up[shard_id] = read.started
                idle += 1
                self._stop.wait(self._idle_wait(idle))

    def _read(self, shard_id: str, iterator: str, idle: int) -> _Read:
        """One batch from `iterator`: up to BatchSize records, gathered for up to the batching window while the
        producer is still sending (`idle`: the empty reads so far, for the back-off between them)."""
        started = time.monotonic()
        producer_done = self._producer_done.is_set()
        batch_size = self._settings["BatchSize"]
        window_ends = started + self._settings["MaximumBatchingWindowInSeconds"]
        batch: list[dict[str, Any]] = []
        next_iterator: str | None = iterator
        behind = 0
        while next_iterator is not None and len(batch) < batch_size:
            page = get_records(self._clients.kinesis, next_iterator, batch_size - len(batch))
            next_iterator = page.next_iterator
            batch.extend(page.records)
            behind = page.millis_behind_latest
            self._behind[shard_id] = behind
            if page.records and len(batch) < batch_size and not producer_done and time.monotonic() < window_ends:
                continue
            if not page.records and not batch and not producer_done and time.monotonic() < window_ends:
                idle += 1
                self._stop.wait(self._idle_wait(idle))
                producer_done = self._producer_done.is_set()
                continue
            break
        return _Read(batch, next_iterator, behind, started, producer_done, idle)

    def _idle_wait(self, idle_reads: int) -> float:
        return float(min(self._idle_poll_interval, self._poll_interval * 2 ** min(idle_reads, 10)))

    def _deliver(self, shard_id: str, records: list[dict[str, Any]]) -> bool:
        """Deliver one batch until done, retried/bisected/sent to the on-failure destination as configured. True
        when the batch is checkpointed through its last record; False when stopping left it unfinished."""
        max_retries = self._settings["MaximumRetryAttempts"]
        max_age = self._settings["MaximumRecordAgeInSeconds"]
        retries = invocations = 0
        while records:
            if self._stop.is_set():
                return False  # not done, not checkpointed: delivered again at the next start
            if max_age >= 0 and self._age_seconds(records[0]) > max_age:
                self._to_on_failure(shard_id, records, "RecordAgeExceeded", invocations)
                return True
            failed_from = self._invoke(shard_id, records)
            invocations += 1
            if failed_from == len(records):
                self._done(shard_id, records)
                return True
            if failed_from > 0:
                self._done(shard_id, records[:failed_from])
                records = records[failed_from:]
            if self._stop.is_set():
                return False  # a failure while stopping is no retry and no on-failure destination: delivered again
            retries += 1
            if max_retries >= 0 and retries > max_retries:
                self._to_on_failure(shard_id, records, "RetryAttemptsExhausted", invocations)
                return True
            if failed_from < 0 and self._settings["BisectBatchOnFunctionError"] and len(records) > 1:
                middle = len(records) // 2
                return self._deliver(shard_id, records[:middle]) and self._deliver(shard_id, records[middle:])
            self._stop.wait(self._retry_delay * min(retries, 20))
        return True

    def _invoke(self, shard_id: str, records: list[dict[str, Any]]) -> int:
        """Returns how many leading records are done: len(records) all, -1 on a function error."""
        event = kinesis_event(
            records,
            shard_id=shard_id,
            stream_arn=self._stream.arn,
            region=self._clients.region,
            role_arn=self._function.role_arn,
        )
        context = LocalLambdaContext(
            function_name=self._function.name,
            invoked_function_arn=self._function.arn,
            memory_limit_in_mb=self._function.memory_mb,
            timeout_seconds=self._function.timeout_seconds,
            stopped=self._stop,
        )
        self.stats.add(invocations=1, records_delivered=len(records))
        try:
            response = self._handler(event, context)
        except Exception as error:
            level = logging.DEBUG if self._stop.is_set() else logging.WARNING
            log.log(level, "consumer invocation failed on %s: %s", shard_id, error)
            self.stats.add(function_errors=1)
            return -1
        if "ReportBatchItemFailures" not in self._settings["FunctionResponseTypes"]:
            return len(records)  # without it, Lambda ignores the response: the batch succeeded
        failures = (response if isinstance(response, dict) else {}).get("batchItemFailures") or []
        if not failures:
            return len(records)
        self.stats.add(partial_failures=1)
        positions = {str(record["SequenceNumber"]): index for index, record in enumerate(records)}
        indexes = [positions.get(str(f.get("itemIdentifier") or "")) for f in failures if isinstance(f, dict)]
        found = [index for index in indexes if index is not None]
        if not found or len(found) != len(failures):
            # An empty, malformed or unknown identifier: Lambda treats the whole batch as failed.
            return 0
        return min(found)

    def _done(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        self._checkpoints.put(shard_id, records[-1]["SequenceNumber"])
        self.stats.add(records_done=len(records))
        if self._on_records_done is not None:
            self._on_records_done(len(records))

    def _to_on_failure(self, shard_id: str, records: list[dict[str, Any]], condition: str, invocations: int) -> None:
        """What Lambda sends to an on-failure destination for a Kinesis batch it gives up on."""
        self.stats.add(batches_to_on_failure=1, records_to_on_failure=len(records))
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self._function.arn,
                "condition": condition,
                "approximateInvokeCount": invocations,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(records[0].get("ApproximateArrivalTimestamp")),
                "approximateArrivalOfLastRecord": _iso(records[-1].get("ApproximateArrivalTimestamp")),
                "batchSize": len(records),
                "streamArn": self._stream.arn,
            },
        }
        if self._queue_url:
            send_message(self._clients.sqs, self._queue_url, orjson.dumps(message).decode())
        log.error(
            "batch of %d records on %s sent to the on-failure destination (%s)",
            len(records),
            shard_id,
            condition,
        )
        self._checkpoints.put(shard_id, records[-1]["SequenceNumber"])

    @staticmethod
    def _age_seconds(record: dict[str, Any]) -> float:
        arrived = record.get("ApproximateArrivalTimestamp")
        if isinstance(arrived, datetime):
            return (datetime.now(arrived.tzinfo or UTC) - arrived).total_seconds()
        return 0.0


@dataclass(frozen=True)
class _Read:
    """One read of a shard: its records (empty when the shard had none) and what the poller decides on."""

    records: list[dict[str, Any]]
    next_iterator: str | None
    behind: int  # MillisBehindLatest of the last page
    started: float  # monotonic
    producer_done: bool  # the producer had finished when the read started (or during its waits)
    idle: int  # the empty reads so far


def _read_ahead(read: Callable[[], _Read], name: str) -> Future[_Read]:
    """`read` run on a thread of its own while the poller delivers. A daemon thread, not an executor's: a read left
    behind by a stop ends with the process."""
    future: Future[_Read] = Future()

    def run() -> None:
        try:
            future.set_result(read())
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return None
