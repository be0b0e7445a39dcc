"""S3 object -> Kinesis records: the producer's work, as a plain function with its clients passed in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tripstream.aws.kinesis import KinesisSender, RecordsNotSent
from tripstream.aws.s3 import ObjectGone, S3ObjectSource, put_json_lines
from tripstream.retry import Backoff, backoff_factory
from tripstream.settings import Settings
from tripstream.trips.normalise import FileRefused, RowError, TripNormaliser
from tripstream.trips.readers import ResumePoint, open_trip_file
from tripstream.trips.records import encode_trip

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client

# How often (in rows) the producer looks at the clock (cheap), and reports progress.
_DEADLINE_CHECK_EVERY = 200
_PROGRESS_EVERY = 2000
# Rejects are written in parts so that a file of garbage never fills memory.
_REJECTS_PER_PART = 10_000


@dataclass
class ProducerResult:
    """What one invocation did with one object."""

    bucket: str
    key: str
    etag: str | None = None
    format: str | None = None
    service: str | None = None
    rows_read: int = 0
    records_sent: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    blank_lines: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    rejects_keys: list[str] = field(default_factory=list)
    put_calls: int = 0
    entries_retried: int = 0
    calls_retried: int = 0
    refused: dict[str, str] | None = None
    # Set when the object was replaced or deleted after its event: this event has nothing left to send.
    gone: str | None = None
    # Set when the invocation stopped before the end of the file: where the follow-up starts.
    resume: dict[str, int | None] | None = None
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rows_rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_backoff(settings: Settings) -> Callable[[], Backoff]:
    return backoff_factory(settings)


def rejects_key(settings: Settings, key: str, etag: str | None, first_row: int) -> str:
    version = (etag or "unversioned").strip('"')
    return f"{settings.rejects_prefix}producer/{key}/{version}/rows-{first_row:012d}.jsonl"


def produce_object(
    s3: S3Client,
    kinesis: KinesisClient,
    settings: Settings,
    bucket: str,
    key: str,
    *,
    etag: str | None = None,
    resume: ResumePoint | None = None,
    remaining_seconds: Callable[[], float] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ProducerResult:
    """Stream one object into the stream. Stops early (with `result.resume`) when time runs short.

    Raises `RecordsNotSent` when records still fail after retries: the caller must not report success. Every
    record of the rows before `result.resume` (or of the whole file) is in the stream when this returns.
    """
    started = time.monotonic()
    source = S3ObjectSource(s3, bucket, key, etag)
    result = ProducerResult(bucket=bucket, key=key)
    rejects_bucket = settings.rejects_bucket or bucket
    try:
        trip_file = open_trip_file(source)
    except ObjectGone as gone:
        result.gone = gone.reason
        result.seconds = time.monotonic() - started
        return result
    except FileRefused as refused:
        result.etag = source.etag
        result.refused = {"problem": refused.problem, "detail": str(refused)}
        report = {"source": {"bucket": bucket, "key": key}, "reason": refused.problem, "detail": str(refused)}
        refused_key = (
            f"{settings.rejects_prefix}producer/{key}/{(source.etag or 'unversioned').strip(chr(34))}/file.jsonl"
        )
        put_json_lines(s3, rejects_bucket, refused_key, [report])
        result.rejects_keys.append(refused_key)
        result.seconds = time.monotonic() - started
        return result
    result.etag, result.format = source.etag, trip_file.format
    result.service, result.ignored_columns = trip_file.header.service, list(trip_file.header.ignored)
    normaliser = TripNormaliser(trip_file.header, source_bucket=bucket, source_key=key)
    sender = KinesisSender(kinesis, settings.stream_name, new_backoff(settings), settings.max_in_flight)
    rejects: list[dict[str, Any]] = []
    first_row = (resume.row_number + 1) if resume else 1
    part_start = first_row
    last_row, last_offset = (resume.row_number, resume.byte_offset) if resume else (0, None)
    sent_before = 0
    try:
        for row in trip_file.rows(resume):
            result.rows_read += 1
            error = row.error
            if error is None:
                assert row.fields is not None
                try:
                    trip = normaliser.normalise(row.fields, row.row_number)
                except RowError as row_error:
                    error = row_error
                else:
                    sender.add(encode_trip(trip), trip["trip_id"])
            if error is not None:
                result.rows_rejected[error.reason] = result.rows_rejected.get(error.reason, 0) + 1
                rejects.append(
                    {
                        "source": {"bucket": bucket, "key": key, "row": row.row_number},
                        "line": row.row_number,
                        "reason": str(error.reason),
                        "column": error.column,
                        "detail": error.detail,
                        "text": row.text,
                    }
                )
                if len(rejects) >= _REJECTS_PER_PART:
                    result.rejects_keys.append(
                        _write_rejects(s3, settings, rejects_bucket, result, part_start, rejects)
                    )
                    part_start, rejects = row.row_number + 1, []
            last_row, last_offset = row.row_number, row.end_offset
            if on_progress is not None and result.rows_read % _PROGRESS_EVERY == 0:
                on_progress(result.rows_read, sender.stats.records_sent - sent_before)
                sent_before = sender.stats.records_sent
            if (
                remaining_seconds is not None
                and result.rows_read % _DEADLINE_CHECK_EVERY == 0
                and remaining_seconds() < settings.deadline_margin_seconds
            ):
                # A row boundary: everything up to last_row is sent (flush below) or rejected.
                result.resume = {"row_number": last_row, "byte_offset": last_offset}
                break
        sender.flush()
    except RecordsNotSent as error:
        error.sent, error.rows_read = sender.stats.records_sent, result.rows_read
        raise
    finally:
        sender.close()
        result.blank_lines = trip_file.stats.blank_lines
        result.records_sent = sender.stats.records_sent
        result.put_calls = sender.stats.calls
        result.entries_retried = sender.stats.entries_retried
        result.calls_retried = sender.stats.calls_retried
    if on_progress is not None:
        on_progress(result.rows_read, sender.stats.records_sent - sent_before)
    if rejects:
        result.rejects_keys.append(_write_rejects(s3, settings, rejects_bucket, result, part_start, rejects))
    result.seconds = time.monotonic() - started
    return result


def _write_rejects(
    s3: S3Client,
    settings: Settings,
    bucket: str,
    result: ProducerResult,
    first_row: int,
    rejects: list[dict[str, Any]],
) -> str:
    key = rejects_key(settings, result.key, result.etag, first_row)
    put_json_lines(s3, bucket, key, rejects)
    return key
