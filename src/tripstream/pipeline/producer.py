"""S3 object -> Kinesis records: the producer's work, as a plain function with its clients passed in."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tripstream.aws.kinesis import KinesisSender
from tripstream.aws.s3 import ObjectGone, S3ObjectSource, put_json_lines
from tripstream.retry import Backoff, backoff_factory
from tripstream.settings import Settings
from tripstream.trips.normalise import FileRefused, TripNormaliser
from tripstream.trips.readers import ResumePoint, open_trip_file
from tripstream.trips.records import encode_trip
from tripstream.trips.rows import trip_rows

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client

# How often (in rows) the producer looks at the clock (cheap), and reports progress.
_DEADLINE_CHECK_EVERY = 200
_PROGRESS_EVERY = 2000
# Rejects are written in parts so that a file of garbage never fills memory.
_REJECTS_PER_PART = 10_000


@dataclass(kw_only=True)
class SentFigures:
    """What reading a trips file and sending its trips gave: one invocation's, or a whole run's or replay's."""

    format: str | None = None
    service: str | None = None
    rows_read: int = 0
    records_sent: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)


@dataclass
class ProducerResult(SentFigures):
    """What one invocation did with one object."""

    bucket: str
    key: str
    etag: str | None = None
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


# S3 refuses keys over 1,024 bytes (UTF-8); the emulator does not check.
MAX_KEY_BYTES = 1024


def rejects_key(settings: Settings, key: str, etag: str | None, first_row: int | None) -> str:
    """Where the rejects of `key` go: `.../rows-{first_row}.jsonl`, or `.../file.jsonl` for a refused file.

    A source key too long to fit is cut and given a hash of the whole key, so the rejects key stays under S3's
    limit and distinct per source key."""
    version = (etag or "unversioned").strip('"')
    name = "file.jsonl" if first_row is None else f"rows-{first_row:012d}.jsonl"
    fixed = f"{settings.rejects_prefix}producer//{version}/{name}"
    room = MAX_KEY_BYTES - len(fixed.encode())
    encoded = key.encode()
    if len(encoded) > room:
        digest = hashlib.blake2b(encoded, digest_size=8).hexdigest()
        key = encoded[: max(room - len(digest) - 1, 0)].decode("utf-8", "ignore") + "~" + digest
    return f"{settings.rejects_prefix}producer/{key}/{version}/{name}"


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
        trip_file = open_trip_file(source, limits=settings.object_limits)
    except ObjectGone as gone:
        result.gone = gone.reason
        result.seconds = time.monotonic() - started
        return result
    except FileRefused as refused:
        result.etag = source.etag
        result.refused = {"problem": refused.problem, "detail": str(refused)}
        report = {"source": {"bucket": bucket, "key": key}, "reason": refused.problem, "detail": str(refused)}
        refused_key = rejects_key(settings, key, source.etag, None)
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
        for outcome in trip_rows(trip_file, normaliser, {"bucket": bucket, "key": key}, resume):
            row = outcome.row
            result.rows_read += 1
            if outcome.trip is not None:
                sender.add(encode_trip(outcome.trip), outcome.trip["trip_id"])
            elif outcome.reject is not None:
                result.rows_rejected[outcome.reject.reason] = result.rows_rejected.get(outcome.reject.reason, 0) + 1
                rejects.append(outcome.reject.to_dict())
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
    except Exception as error:
        # Whatever stops the invocation, what it got done goes with the error: the summary stays true. The calls
        # in flight finish first (close waits for them), so that what they sent is counted.
        sender.close()
        vars(error).update(sent=sender.stats.records_sent, rows_read=result.rows_read)
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


# --- one event: its objects in order, and a continuation for what did not fit -------------------

CONTINUATION = "tripstream_continuation"


@dataclass
class EventResult:
    """What one producer invocation did: a result per object processed, and the jobs left for a follow-up."""

    results: list[ProducerResult] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    # Jobs naming an object the producer may not read (another bucket, the rejects): refused unread.
    refused_jobs: int = 0

    def response(self) -> dict[str, Any]:
        response: dict[str, Any] = {"results": [result.to_dict() for result in self.results]}
        if self.refused_jobs:
            response["refused_jobs"] = self.refused_jobs
        if self.pending:
            response["continuation"] = {CONTINUATION: self.pending}
        return response


def produce_event(
    s3: S3Client,
    kinesis: KinesisClient,
    settings: Settings,
    jobs: list[dict[str, Any]],
    *,
    remaining_seconds: Callable[[], float] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[ProducerResult], None] | None = None,
) -> EventResult:
    """Produce every job (`{"bucket", "key", "etag", "resume"?}`) in order until time runs short; the job that
    stopped early and every later one are `pending`, for a follow-up invocation. `on_progress(rows, records)`
    gets increments. Raises `RecordsNotSent` (the invocation must fail, so that Lambda retries the event)."""
    outcome = EventResult()
    for job in jobs:
        if outcome.pending:  # time already ran out: the rest goes to the follow-up untouched
            outcome.pending.append(job)
            continue
        refusal = foreign_job(settings, job)
        if refusal is not None:
            result = ProducerResult(bucket=str(job.get("bucket")), key=str(job.get("key")), refused=refusal)
            outcome.results.append(result)
            outcome.refused_jobs += 1
            if on_result is not None:
                on_result(result)
            continue
        resume, etag = job.get("resume"), job.get("etag")
        result = produce_object(
            s3,
            kinesis,
            settings,
            job["bucket"],
            job["key"],
            etag=f'"{etag.strip(chr(34))}"' if etag else None,
            resume=ResumePoint(**resume) if resume else None,
            remaining_seconds=remaining_seconds,
            on_progress=_row_increments(on_progress),
        )
        outcome.results.append(result)
        if on_result is not None:
            on_result(result)
        if result.resume is not None:
            outcome.pending.append({**job, "etag": result.etag, "resume": result.resume})
    return outcome


def foreign_job(settings: Settings, job: dict[str, Any]) -> dict[str, str] | None:
    """Why the producer must not read the object `job` names, or None: only the stack's own bucket is a source
    (whoever may invoke the function could otherwise copy any readable bucket into the rejects and the logs),
    and the rejects are never a source (a separate rejects bucket is not the source bucket, so it is refused)."""
    bucket, key = job.get("bucket"), job.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        return {"problem": "invalid_job", "detail": f"a job without a bucket and key: {str(job)[:200]}"}
    if settings.source_bucket is not None and bucket != settings.source_bucket:
        detail = f"s3://{bucket}/{key[:200]}: not the stack's bucket ({settings.source_bucket}); not read"
        return {"problem": "foreign_bucket", "detail": detail}
    rejects_bucket = settings.rejects_bucket or bucket
    if bucket == rejects_bucket and settings.rejects_prefix and key.startswith(settings.rejects_prefix):
        detail = f"s3://{bucket}/{key[:200]}: under the rejects prefix {settings.rejects_prefix}; not read"
        return {"problem": "rejects_object", "detail": detail}
    return None


def _row_increments(on_progress: Callable[[int, int], None] | None) -> Callable[[int, int], None] | None:
    """produce_object reports (rows read so far in this job, records sent since the last call): make both increments."""
    if on_progress is None:
        return None
    rows_before = 0

    def report(rows_read: int, records_sent: int) -> None:
        nonlocal rows_before
        on_progress(rows_read - rows_before, records_sent)
        rows_before = rows_read

    return report
