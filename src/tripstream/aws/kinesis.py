"""Kinesis calls: PutRecords in batches sized by both limits, failed entries retried alone; shard reads."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tripstream.aws.errors import error_code, is_transient
from tripstream.counters import Counters
from tripstream.retry import Backoff

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024  # data + partition keys
MAX_BYTES_PER_RECORD = 1024 * 1024

Entry = tuple[bytes, str]  # (data, partition key)


class RecordsNotSent(RuntimeError):
    """Records that still failed after every retry: the invocation must fail so that it is retried.

    `count` is how many records the sender was given and did not get into the stream: those Kinesis did not
    accept, those not yet sent, and the one being added when the failure was seen (the producer stops reading
    there, so rows after it are not counted). `sent` (set by the producer) is how many records the failed
    invocation did get into the stream before it gave up (its retry sends them again): `count + sent` is every
    record the invocation read.
    """

    def __init__(self, count: int, reason: str, *, sent: int = 0) -> None:
        super().__init__(f"{count} records not sent to Kinesis after retries ({reason})")
        self.count = count
        self.reason = reason
        self.sent = sent
        self.rows_read = 0  # set by the producer: rows read before it stopped


@dataclass
class PutStats(Counters):
    calls: int = 0
    records_sent: int = 0
    entries_retried: int = 0
    calls_retried: int = 0


def put_records(
    kinesis: KinesisClient, stream_name: str, entries: list[Entry], backoff: Backoff, stats: PutStats
) -> None:
    """Send one batch; entries that come back with an ErrorCode are retried alone, with backoff.

    A throttled or failed call (or a dropped connection) is retried whole, with the same backoff. The retry budget
    counts records, not calls: each record of the batch brings `max_attempts - 1` resends to a pool the batch
    shares, and every record sent again spends one. A stream that accepts nothing is given up on after exactly
    `max_attempts` calls; one that keeps accepting part of each call is not given up on at its tail, where a few
    records can fail several calls in a row (the time bound still applies). Raises `RecordsNotSent` when the
    budget or the time is spent with entries still unsent; never returns with entries missing.
    """
    resends = (backoff.max_attempts - 1) * len(entries)
    pending = entries
    while pending:
        try:
            response = kinesis.put_records(
                StreamName=stream_name, Records=[{"Data": data, "PartitionKey": key} for data, key in pending]
            )
        except Exception as error:
            if not is_transient(error):
                raise
            stats.add(calls=1)
            resends -= len(pending)
            if resends < 0 or not _wait(backoff):
                raise RecordsNotSent(len(pending), f"{type(error).__name__}: {error}") from error
            stats.add(calls_retried=1)
            continue
        stats.add(calls=1)
        results = response["Records"]
        if len(results) != len(pending):
            raise RuntimeError(f"PutRecords answered {len(results)} results for {len(pending)} records")
        failed = [entry for entry, result in zip(pending, results, strict=True) if result.get("ErrorCode")]
        stats.add(records_sent=len(pending) - len(failed))
        if not failed:
            return
        if len(failed) < len(pending):
            backoff.progressed()  # back to short delays
        resends -= len(failed)
        if resends < 0 or not _wait(backoff):
            codes = sorted({result["ErrorCode"] for result in results if result.get("ErrorCode")})
            raise RecordsNotSent(len(failed), ", ".join(codes))
        stats.add(entries_retried=len(failed))
        pending = failed


def _wait(backoff: Backoff) -> bool:
    """The backoff's sleep and time bound; its attempt count only grows the delay (the record budget counts)."""
    backoff.attempts = min(backoff.attempts, backoff.max_attempts - 1)
    return backoff.wait()


class KinesisSender:
    """Packs entries into PutRecords calls (≤ 500 records, ≤ 5 MiB) and keeps up to N calls in flight.

    The first failure stops the sender: `add` and `flush` then wait for the calls in flight, cancel the
    queued ones and raise one `RecordsNotSent` that counts every record not accepted by Kinesis.
    """

    def __init__(
        self,
        kinesis: KinesisClient,
        stream_name: str,
        new_backoff: Callable[[], Backoff],
        max_in_flight: int = 4,
    ) -> None:
        self._kinesis = kinesis
        self._stream = stream_name
        self._new_backoff = new_backoff
        self.stats = PutStats()
        self._batch: list[Entry] = []
        self._batch_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_in_flight), thread_name_prefix="put-records")
        self._slots = threading.BoundedSemaphore(max(1, max_in_flight) * 2)
        self._futures: list[tuple[Future[None], int]] = []

    def add(self, data: bytes, partition_key: str) -> None:
        size = len(data) + len(partition_key.encode())
        if size > MAX_BYTES_PER_RECORD:
            raise ValueError(f"a record of {size} bytes exceeds Kinesis' 1 MiB limit")
        if len(self._batch) >= MAX_RECORDS_PER_CALL or self._batch_bytes + size > MAX_BYTES_PER_CALL:
            self._submit(adding=(data, partition_key))
        self._batch.append((data, partition_key))
        self._batch_bytes += size

    def _send(self, batch: list[Entry]) -> None:
        # The backoff is made here, in the worker: its time bound starts with the call's first attempt.
        put_records(self._kinesis, self._stream, batch, self._new_backoff(), self.stats)

    def _submit(self, adding: Entry | None = None) -> None:
        """Send the batch; `adding`, the entry `add` holds for the next one, is counted too if a call failed."""
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if any(future.done() and future.exception() is not None for future, _ in self._futures):
            self._batch = batch + ([adding] if adding is not None else [])  # counted as not sent by _raise_failures
            self._raise_failures()
        self._slots.acquire()
        future = self._pool.submit(self._send, batch)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append((future, len(batch)))
        self._futures = [(f, n) for f, n in self._futures if not (f.done() and f.exception() is None)]

    def _raise_failures(self) -> None:
        """Wait for every call, then raise what failed (one RecordsNotSent for all, or the first other error)."""
        not_sent = len(self._batch)
        self._batch, self._batch_bytes = [], 0
        reasons: list[str] = []
        other: BaseException | None = None
        for future, size in self._futures:
            if future.cancel():
                not_sent += size
                continue
            error = future.exception()
            if isinstance(error, RecordsNotSent):
                not_sent += error.count
                reasons.append(error.reason)
            elif error is not None and other is None:
                other = error
        self._futures = []
        if other is not None:
            raise other
        if not_sent or reasons:
            raise RecordsNotSent(not_sent, "; ".join(sorted(set(reasons))) or "an earlier call failed")

    def flush(self) -> None:
        """Send what is batched and wait for every call; raises when any record was not accepted."""
        self._submit()
        if any(future.exception() is not None for future, _ in self._futures):  # waits for each call
            self._raise_failures()
        self._futures = []

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def list_shard_ids(kinesis: KinesisClient, stream_name: str) -> list[str]:
    shard_ids: list[str] = []
    kwargs: dict[str, Any] = {"StreamName": stream_name}
    while True:
        page = kinesis.list_shards(**kwargs)
        shard_ids.extend(shard["ShardId"] for shard in page["Shards"])
        token = page.get("NextToken")
        if not token:
            return shard_ids
        kwargs = {"NextToken": token}


def stream_arn(kinesis: KinesisClient, stream_name: str) -> str:
    return kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["StreamARN"]


def shard_iterator(
    kinesis: KinesisClient,
    stream_name: str,
    shard_id: str,
    after_sequence_number: str | None,
    *,
    at_sequence_number: str | None = None,
) -> str:
    """An iterator at the shard's oldest record, or just after / at a sequence number."""
    kind: Literal["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"]
    if at_sequence_number is not None:
        kind, number = "AT_SEQUENCE_NUMBER", at_sequence_number
    elif after_sequence_number is not None:
        kind, number = "AFTER_SEQUENCE_NUMBER", after_sequence_number
    else:
        return kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
    return kinesis.get_shard_iterator(
        StreamName=stream_name, ShardId=shard_id, ShardIteratorType=kind, StartingSequenceNumber=number
    )["ShardIterator"]


@dataclass
class RangeRead:
    """The records of one shard's sequence range still in the stream (in order); `gone` says why none can be
    read at all (the shard no longer exists, or the stream does not know the sequence number)."""

    records: list[dict[str, Any]]
    gone: str | None = None


def read_sequence_range(kinesis: KinesisClient, stream_name: str, shard_id: str, start: str, end: str) -> RangeRead:
    """The records of `shard_id` with start <= sequence number <= end (compared as numbers), as far as the stream
    still holds them: records past the retention period are simply absent (the caller compares counts)."""
    try:
        iterator = shard_iterator(kinesis, stream_name, shard_id, None, at_sequence_number=start)
    except Exception as error:
        if error_code(error) in {"ResourceNotFoundException", "InvalidArgumentException"}:
            return RangeRead([], gone=f"{error_code(error)}: {error}")
        raise
    return RangeRead(_read_to(kinesis, iterator, first=int(start), last=int(end)))


def read_shard_since(
    kinesis: KinesisClient, stream_name: str, shard_id: str, since: dt.datetime
) -> list[dict[str, Any]]:
    """The records of `shard_id` that arrived at or after `since`, up to the shard's end as of now."""
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_name, ShardId=shard_id, ShardIteratorType="AT_TIMESTAMP", Timestamp=since
    )["ShardIterator"]
    return _read_to(kinesis, iterator)


def _read_to(
    kinesis: KinesisClient, iterator: str | None, *, first: int | None = None, last: int | None = None
) -> list[dict[str, Any]]:
    """Read on from `iterator` until a record past `last`, the shard's end, or no record left now."""
    records: list[dict[str, Any]] = []
    while iterator is not None:  # None: a closed shard read to its end
        page = get_records(kinesis, iterator, 10_000)
        iterator = page.next_iterator
        for record in page.records:
            number = int(record["SequenceNumber"])
            if last is not None and number > last:
                return records
            if first is None or number >= first:
                records.append(record)
        if not page.records and page.millis_behind_latest == 0:
            break
    return records


@dataclass
class RecordsPage:
    records: list[dict[str, Any]]
    next_iterator: str | None
    millis_behind_latest: int


def get_records(kinesis: KinesisClient, iterator: str, limit: int) -> RecordsPage:
    response = kinesis.get_records(ShardIterator=iterator, Limit=limit)
    return RecordsPage(
        records=[dict(record) for record in response["Records"]],
        next_iterator=response.get("NextShardIterator"),
        millis_behind_latest=response.get("MillisBehindLatest", 0),
    )


def iter_stream_records(kinesis: KinesisClient, stream_name: str, limit: int = 10_000) -> Iterator[dict[str, Any]]:
    """Every record currently in the stream, shard by shard (tests and reports)."""
    for shard_id in list_shard_ids(kinesis, stream_name):
        iterator: str | None = shard_iterator(kinesis, stream_name, shard_id, None)
        while iterator:
            page = get_records(kinesis, iterator, limit)
            yield from page.records
            if not page.records and page.millis_behind_latest == 0:
                break
            iterator = page.next_iterator


@dataclass(frozen=True)
class StreamSummary:
    """What DescribeStreamSummary says of a stream."""

    name: str
    arn: str
    status: str
    created: dt.datetime
    open_shards: int | None
    mode: str | None
    encryption: str
    retention_hours: int | None


def describe_stream_summary(kinesis: KinesisClient, stream_name: str) -> StreamSummary:
    summary = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    return StreamSummary(
        name=stream_name,
        arn=summary["StreamARN"],
        status=summary["StreamStatus"],
        created=summary["StreamCreationTimestamp"],
        open_shards=summary.get("OpenShardCount"),
        mode=summary.get("StreamModeDetails", {}).get("StreamMode"),
        encryption=summary.get("EncryptionType", "NONE"),
        retention_hours=summary.get("RetentionPeriodHours"),
    )
