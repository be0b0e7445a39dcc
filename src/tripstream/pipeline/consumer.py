"""Kinesis records -> the three analytics tables: the consumer's work, as a plain function.

Per-record problems (undecodable, invalid) go to rejects and count as processed: retrying cannot fix them.
Transient problems leave records unwritten; the first such record is reported so that Lambda re-delivers the
batch from there. Every write is a put keyed by `trip_id`, so re-delivery never duplicates; the zone x hour
aggregates are added under a per-trip marker in one transaction (aws.aggregates), so they never count twice.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from tripstream.aws.aggregates import AggregateStats, AggregateTables, count_trips_once
from tripstream.aws.dynamodb import Key, WriteStats, to_item, write_items
from tripstream.aws.errors import is_transient
from tripstream.aws.s3 import put_json_lines
from tripstream.retry import Backoff, backoff_factory
from tripstream.settings import Settings
from tripstream.trips.aggregates import Contribution, by_cell, contribution
from tripstream.trips.analytics import classify
from tripstream.trips.normalise import RejectReason, RowError
from tripstream.trips.records import decode_record
from tripstream.trips.rows import Reject

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

_REJECT_TEXT = 2000


@dataclass(frozen=True)
class StreamRecord:
    """One Kinesis record as the consumer needs it (parsed from the Lambda event by the handler)."""

    sequence_number: str
    shard_id: str
    data: bytes | None  # None when the event's base64 could not be decoded
    partition_key: str = ""


@dataclass
class ConsumerResult:
    records_received: int = 0
    trips_processed: int = 0
    records_rejected: dict[str, int] = field(default_factory=dict)
    # The items of the records done (`writes.items_written` also counts those of records delivered again).
    items_written: dict[str, int] = field(default_factory=dict)
    duration_categories: dict[str, int] = field(default_factory=dict)
    writes: WriteStats = field(default_factory=WriteStats)  # the per-trip tables' BatchWriteItem calls
    aggregates: AggregateStats = field(default_factory=AggregateStats)  # zone_hourly_stats' transactions
    rejects_key: str | None = None
    # The sequence number Lambda must re-deliver from (None: the whole batch is done).
    first_failed_sequence: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsumerResult:
        """A result again from its `to_dict` (the "batch processed" log line's); keys it does not know are left out."""
        known = {f.name for f in fields(cls)} - {"writes", "aggregates"}
        return cls(
            **{key: value for key, value in data.items() if key in known},
            writes=WriteStats.from_dict(data.get("writes") or {}),
            aggregates=AggregateStats.from_dict(data.get("aggregates") or {}),
        )


def consume_records(
    dynamodb: DynamoDBClient,
    s3: S3Client,
    settings: Settings,
    records: list[StreamRecord],
    *,
    remaining_seconds: Callable[[], float] | None = None,
) -> ConsumerResult:
    """Decode, classify and write `records`; `remaining_seconds` (the invocation's remaining time) bounds the
    DynamoDB retries: none starts later than `consumer_deadline_margin_seconds` before the deadline, and what is
    unwritten then is reported (`first_failed_sequence`) for Lambda to re-deliver, instead of a timeout."""
    started = time.monotonic()
    result = ConsumerResult(records_received=len(records))
    rejects: list[tuple[int, Reject]] = []  # (index of the record, its reject)
    requests: dict[Key, tuple[int, dict[str, Any]]] = {}
    categories: list[str | None] = [None] * len(records)
    contributions: list[tuple[int, Contribution]] = []
    tables = (settings.high_value_table, settings.duration_table, settings.fare_ratio_table)
    for index, record in enumerate(records):
        try:
            if record.data is None:
                raise RowError(RejectReason.UNDECODABLE_RECORD, "the record's data is not valid base64")
            trip = decode_record(record.data, record.shard_id, record.sequence_number)
            try:
                items = classify(trip, settings.thresholds)
                counted = contribution(trip, items)
            except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
                raise RowError(RejectReason.INVALID_RECORD, f"cannot classify: {exc}") from None
        except RowError as error:
            rejects.append((index, _reject(record, error)))
            continue
        for table, item in zip(tables, (items.high_value, items.duration, items.fare_ratio), strict=True):
            if item is not None:
                key = (table, item["trip_id"])
                # BatchWriteItem refuses two requests for one key in a call; the same trip is the same item.
                first = requests[key][0] if key in requests else index
                requests[key] = (first, to_item(item))
        if items.duration is not None:
            categories[index] = items.duration["duration_category"]
        contributions.append((index, counted))
    failed_index: int | None = None
    new_backoff = _bounded_backoff(settings, remaining_seconds)
    # The aggregates' transactions and the per-trip writes are independent: both in flight at once.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aggregates") as pool:
        counting = pool.submit(_count_aggregates, dynamodb, settings, contributions, new_backoff, result.aggregates)
        unwritten = write_items(
            dynamodb,
            ((table, item) for (table, _), (_, item) in requests.items()),
            new_backoff,
            result.writes,
            settings.max_in_flight,
        )
        uncounted = counting.result()
    for key in unwritten:
        index = requests[key][0]
        failed_index = index if failed_index is None else min(failed_index, index)
    if uncounted is not None:
        failed_index = uncounted if failed_index is None else min(failed_index, uncounted)
    done = len(records) if failed_index is None else failed_index
    # Rejects are written last and only for the records this invocation completes: the records after a
    # failure are delivered again, and their rejects then go out with that delivery (each reject once).
    rejected_before_done = [reject for index, reject in rejects if index < done]
    if rejected_before_done:
        try:
            result.rejects_key = _write_rejects(s3, settings, rejected_before_done)
        except Exception as error:
            if not is_transient(error):
                raise
            done = next(index for index, _ in rejects if index < done)
            failed_index = done
            rejected_before_done = []
    result.trips_processed = done - len(rejected_before_done)
    result.records_rejected = dict(Counter(reject.reason for reject in rejected_before_done))
    result.duration_categories = dict(Counter(c for c in categories[:done] if c is not None))
    result.items_written = dict(Counter(table for (table, _), (first, _) in requests.items() if first < done))
    if failed_index is not None:
        result.first_failed_sequence = records[failed_index].sequence_number
    result.seconds = time.monotonic() - started
    return result


def _count_aggregates(
    dynamodb: DynamoDBClient,
    settings: Settings,
    contributions: list[tuple[int, Contribution]],
    new_backoff: Callable[[], Backoff],
    stats: AggregateStats,
) -> int | None:
    """Add the accepted trips to zone_hourly_stats (each trip once, ever; figures in `stats`); returns the index of
    the first record of a trip left uncounted (None: all counted). Off when either table's name is empty."""
    if not (settings.zone_hourly_stats_table and settings.counted_trips_table and contributions):
        return None
    first_index: dict[str, int] = {}
    for index, item in contributions:
        first_index.setdefault(item.trip_id, index)
    cells = {
        cell: {item.trip_id: item.increments for item in items}
        for cell, items in by_cell(item for _, item in contributions).items()
    }
    tables = AggregateTables(
        settings.zone_hourly_stats_table, settings.counted_trips_table, settings.counted_trips_ttl_days * 86_400
    )
    # A token scope per invocation: its own retries replay, a later delivery never does (the markers decide).
    scope = uuid.uuid4().hex
    uncounted = count_trips_once(dynamodb, tables, cells, new_backoff, stats, settings.max_in_flight, scope)
    return min((first_index[trip_id] for trip_id in uncounted), default=None)


def _bounded_backoff(settings: Settings, remaining_seconds: Callable[[], float] | None) -> Callable[[], Backoff]:
    """The RETRY_* backoff, its time bound cut to the invocation's remaining time less the safety margin (read
    when each write starts, so a chunk that starts late gets what is left then)."""
    new_backoff = backoff_factory(settings)
    if remaining_seconds is None:
        return new_backoff

    def bounded() -> Backoff:
        backoff = new_backoff()
        left = remaining_seconds() - settings.consumer_deadline_margin_seconds
        backoff.max_elapsed = max(0.0, min(backoff.max_elapsed, left))
        return backoff

    return bounded


def _reject(record: StreamRecord, error: RowError) -> Reject:
    text = "" if record.data is None else record.data[:_REJECT_TEXT].decode("utf-8", "replace")
    source = {"shard_id": record.shard_id, "sequence_number": record.sequence_number}
    return Reject({**source, "partition_key": record.partition_key}, error, text)


def _write_rejects(s3: S3Client, settings: Settings, rejects: list[Reject]) -> str:
    if not settings.rejects_bucket:
        raise RuntimeError("REJECTS_BUCKET is not set: the consumer has nowhere to keep rejected records")
    first = rejects[0].source
    key = f"{settings.rejects_prefix}consumer/{first['shard_id']}/{first['sequence_number']}.jsonl"
    put_json_lines(s3, settings.rejects_bucket, key, (reject.to_dict() for reject in rejects))
    return key
