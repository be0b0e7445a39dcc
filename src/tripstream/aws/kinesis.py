"""Kinesis calls: PutRecords in batches sized by both limits, failed entries retried alone; shard reads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tripstream.retry import Backoff, is_transient

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024  # data + partition keys
MAX_BYTES_PER_RECORD = 1024 * 1024

Entry = tuple[bytes, str]  # (data, partition key)


class RecordsNotSent(RuntimeError):
    """Records that still failed after every retry: the invocation must fail so that it is retried."""

    def __init__(self, count: int, reason: str) -> None:
        super().__init__(f"{count} records not sent to Kinesis after retries ({reason})")
        self.count = count
        self.reason = reason


@dataclass
class PutStats:
    calls: int = 0
    records_sent: int = 0
    entries_retried: int = 0
    calls_retried: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def put_records(
    kinesis: KinesisClient, stream_name: str, entries: list[Entry], backoff: Backoff, stats: PutStats
) -> None:
    """Send one batch; entries that come back with an ErrorCode are retried alone, with backoff."""
    pending = entries
    while pending:
        try:
            response = kinesis.put_records(
                StreamName=stream_name, Records=[{"Data": data, "PartitionKey": key} for data, key in pending]
            )
        except Exception as error:
            if not is_transient(error):
                raise
            stats.add(calls=1, calls_retried=1)
            if not backoff.wait():
                raise RecordsNotSent(len(pending), f"{type(error).__name__}: {error}") from error
            continue
        stats.add(calls=1)
        if response.get("FailedRecordCount", 0) == 0:
            stats.add(records_sent=len(pending))
            return
        results = response["Records"]
        failed = [entry for entry, result in zip(pending, results, strict=True) if result.get("ErrorCode")]
        stats.add(records_sent=len(pending) - len(failed), entries_retried=len(failed))
        if not backoff.wait():
            codes = sorted({result["ErrorCode"] for result in results if result.get("ErrorCode")})
            raise RecordsNotSent(len(failed), ", ".join(codes))
        pending = failed


class KinesisSender:
    """Packs entries into PutRecords calls (≤ 500 records, ≤ 5 MiB) and keeps up to N calls in flight."""

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
        self._futures: list[Future[None]] = []

    def add(self, data: bytes, partition_key: str) -> None:
        size = len(data) + len(partition_key.encode())
        if size > MAX_BYTES_PER_RECORD:
            raise ValueError(f"a record of {size} bytes exceeds Kinesis' 1 MiB limit")
        if len(self._batch) >= MAX_RECORDS_PER_CALL or self._batch_bytes + size > MAX_BYTES_PER_CALL:
            self._submit()
        self._batch.append((data, partition_key))
        self._batch_bytes += size

    def _submit(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self._raise_first_error(done_only=True)
        self._slots.acquire()
        future = self._pool.submit(put_records, self._kinesis, self._stream, batch, self._new_backoff(), self.stats)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _raise_first_error(self, *, done_only: bool) -> None:
        remaining: list[Future[None]] = []
        for future in self._futures:
            if done_only and not future.done():
                remaining.append(future)
                continue
            future.result()  # re-raises RecordsNotSent or a non-transient error
        self._futures = remaining

    def flush(self) -> None:
        """Send what is batched and wait for every call; raises the first failure."""
        self._submit()
        try:
            self._raise_first_error(done_only=False)
        finally:
            self._futures = [f for f in self._futures if not f.done()]

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


def shard_iterator(kinesis: KinesisClient, stream_name: str, shard_id: str, after_sequence_number: str | None) -> str:
    if after_sequence_number is None:
        response = kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )
    else:
        response = kinesis.get_shard_iterator(
            StreamName=stream_name,
            ShardId=shard_id,
            ShardIteratorType="AFTER_SEQUENCE_NUMBER",
            StartingSequenceNumber=after_sequence_number,
        )
    return response["ShardIterator"]


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
