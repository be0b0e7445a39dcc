"""`tripstream redrive`: the work Lambda gave up on, handed to the functions again.

Two queues hold it:

- the consumer's **on-failure queue** (the Kinesis event source mapping's OnFailure destination): each message is
  an invocation record, `KinesisBatchInfo` = shard id, first and last sequence number, batch size, stream ARN, and
  no record. The range is read again from the stream (`aws.kinesis.read_sequence_range`) and handed to the consumer
  in Kinesis-shaped batches, retried from the first failed record as the event source mapping does. Nothing counts
  twice: the consumer's writes are puts by `trip_id` and the aggregates are guarded by their markers.
- the producer's **dead-letter queue** (asynchronous invocation DLQ): each message body is the event given up on
  (the S3 event, or a continuation), and the producer is invoked on it again.

A message is deleted only once its work succeeded. A range partly or wholly past the stream's retention is
reported with the objects to upload again: the source keys of the range's records still readable (the canonical
records carry them), else "unknown" with the range's arrival times (the invocation record names no object). Such a
message is kept (or deleted with `delete_expired`: nothing more can be read for it). `dry_run` reads the queues and
the stream and changes nothing: every message received is made visible again at once.

How the work is handed over is the caller's (`Functions`): the deployed functions on AWS, the handlers in this
process on a local endpoint (`local.commands.redrive`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import unquote_plus

import orjson

from tripstream.aws.kinesis import read_sequence_range
from tripstream.aws.sqs import Message, delete_message, receive_messages, release_message
from tripstream.pipeline.producer import CONTINUATION

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

ON_FAILURE: Final = "on-failure"
DEAD_LETTER: Final = "dead-letter"
# What became of a message.
REDRIVEN: Final = "redriven"  # its work succeeded; deleted
WOULD_REDRIVE: Final = "would redrive"  # --dry-run
FAILED: Final = "failed"  # the function failed again; kept
EXPIRED: Final = "past retention"  # (part of) its range is gone from the stream; kept unless delete_expired
UNREADABLE: Final = "unreadable"  # not a message this command understands; kept
UNKNOWN_SOURCE: Final = "unknown"
# Records per consumer invocation (the template's largest BatchSize default; Lambda's payload limit is 6 MB).
MAX_BATCH_RECORDS: Final = 500
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
DEFAULT_ATTEMPTS: Final = 3


class Functions(Protocol):
    """How the redrive hands work to the pipeline's functions."""

    def consume(self, shard_id: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The consumer's response (`batchItemFailures`) to a Kinesis batch of these GetRecords records; raises
        when the invocation itself failed."""
        ...

    def produce(self, event: dict[str, Any]) -> None:
        """The producer invoked on `event` and done with it (what it sent is the consumer's); raises on failure."""
        ...


class RedriveFailed(RuntimeError):
    """The consumer still failed a batch after every attempt."""


@dataclass
class Outcome:
    queue: str  # ON_FAILURE or DEAD_LETTER
    message_id: str
    action: str
    detail: str = ""
    shard_id: str | None = None
    first_sequence: str | None = None
    last_sequence: str | None = None
    records: int = 0  # records re-read from the stream (and handed to the consumer unless a dry run)
    missing: int = 0  # records of the range no longer in the stream
    sources: list[str] = field(default_factory=list)  # objects (s3://bucket/key) the message's records came from
    deleted: bool = False

    def line(self) -> str:
        if self.queue == ON_FAILURE:
            what = f"{self.shard_id} {self.first_sequence}..{self.last_sequence}: {self.records} records"
            if self.missing:
                what += f", {self.missing} past retention"
        else:
            what = "event"
        where = f" from {', '.join(self.sources)}" if self.sources else ""
        state = "deleted" if self.deleted else "kept"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.queue} {self.message_id}: {self.action}: {what}{where}{detail}; message {state}"


@dataclass
class RedriveReport:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, queue: str, action: str) -> int:
        return sum(1 for o in self.outcomes if o.queue == queue and o.action == action)

    @property
    def kept(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.deleted and o.action != WOULD_REDRIVE]

    @property
    def upload_again(self) -> list[str]:
        """The objects whose records are (partly) gone from the stream: to upload again."""
        return sorted({source for o in self.outcomes if o.action == EXPIRED for source in o.sources})

    @property
    def ok(self) -> bool:
        return not self.kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "outcomes": [asdict(o) for o in self.outcomes],
            "upload_again": self.upload_again,
            "ok": self.ok,
        }


def redrive(
    sqs: SQSClient,
    kinesis: KinesisClient,
    *,
    stream_name: str,
    on_failure_queue_url: str | None,
    dead_letter_queue_url: str | None,
    functions: Functions,
    dry_run: bool = False,
    delete_expired: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    visibility_seconds: int = 960,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> RedriveReport:
    """Redrive every message of both queues (the on-failure queue first: its records are older); see the module.

    `visibility_seconds` keeps a message away from other readers while its work runs (longer than a producer
    invocation); a message that is kept is made visible again at the end."""
    report = RedriveReport(dry_run=dry_run)

    def record(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    def on_failure(message: Message) -> Outcome:
        return _redrive_range(kinesis, stream_name, functions, message, dry_run, attempts)

    def dead_letter(message: Message) -> Outcome:
        return _redrive_event(functions, message, dry_run)

    for url, handle in ((on_failure_queue_url, on_failure), (dead_letter_queue_url, dead_letter)):
        if url:
            _each_message(sqs, url, handle, record, delete_expired=delete_expired, visibility=visibility_seconds)
    return report


def _each_message(
    sqs: SQSClient,
    url: str,
    handle: Callable[[Message], Outcome],
    record: Callable[[Outcome], None],
    *,
    delete_expired: bool,
    visibility: int,
) -> None:
    """Every message of the queue once: handled, then deleted when its work is done, else released at the end."""
    seen: set[str] = set()
    kept: dict[str, Message] = {}  # message id -> its latest receipt
    try:
        while True:
            # A short long poll: SQS then asks all its servers, so an empty answer means an empty queue.
            messages = receive_messages(sqs, url, wait_seconds=1, limit=10, visibility_timeout=visibility)
            fresh = [m for m in messages if (m.message_id or m.receipt_handle) not in seen]
            kept |= {m.message_id or m.receipt_handle: m for m in messages if m not in fresh}
            if not fresh:  # every message was handled (one seen again: its visibility ran out meanwhile)
                break
            for message in fresh:
                key = message.message_id or message.receipt_handle
                seen.add(key)
                outcome = handle(message)
                if outcome.action == REDRIVEN or (outcome.action == EXPIRED and delete_expired):
                    delete_message(sqs, url, message.receipt_handle)
                    outcome.deleted = True
                else:
                    kept[key] = message
                record(outcome)
    finally:
        for message in kept.values():
            try:
                release_message(sqs, url, message.receipt_handle)
            except Exception as error:  # it becomes visible anyway when its visibility timeout ends
                log.warning("could not make message %s visible again: %s", message.message_id, error)


# ---------------------------------------------------------------- the consumer's on-failure queue


def _redrive_range(
    kinesis: KinesisClient,
    stream_name: str,
    functions: Functions,
    message: Message,
    dry_run: bool,
    attempts: int,
) -> Outcome:
    outcome = Outcome(ON_FAILURE, message.message_id, UNREADABLE)
    try:
        info = orjson.loads(message.body)["KinesisBatchInfo"]
        outcome.shard_id = str(info["shardId"])
        outcome.first_sequence = str(info["startSequenceNumber"])
        outcome.last_sequence = str(info["endSequenceNumber"])
        if not (outcome.first_sequence.isdigit() and outcome.last_sequence.isdigit()):
            raise ValueError("sequence numbers are not numbers")
        batch_size = int(info.get("batchSize") or 0)
        stream = str(info.get("streamArn") or "").rpartition(":stream/")[2] or stream_name
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        outcome.detail = f"not a Kinesis invocation record: {type(error).__name__}: {error}"
        return outcome
    if stream != stream_name:
        outcome.detail = f"a batch of stream {stream}, not {stream_name}"
        return outcome
    read = read_sequence_range(kinesis, stream_name, outcome.shard_id, outcome.first_sequence, outcome.last_sequence)
    records = read.records
    outcome.records = len(records)
    outcome.missing = max(0, batch_size - len(records)) if batch_size else int(not records)
    outcome.sources = record_sources(records)
    if outcome.missing:
        arrival = f"{info.get('approximateArrivalOfFirstRecord')} to {info.get('approximateArrivalOfLastRecord')}"
        outcome.detail = (
            f"{outcome.missing} of {batch_size or '?'} records are no longer in the stream"
            + (f" ({read.gone})" if read.gone else "")
            + f"; they arrived {arrival}: upload their objects again"
        )
        if not outcome.sources:
            outcome.sources = [UNKNOWN_SOURCE]
    if dry_run:
        outcome.action = WOULD_REDRIVE
        return outcome
    try:
        deliver(functions, outcome.shard_id, records, attempts=attempts)
    except RedriveFailed as error:
        outcome.action, outcome.detail = FAILED, "; ".join(filter(None, (str(error), outcome.detail)))
        return outcome
    outcome.action = EXPIRED if outcome.missing else REDRIVEN
    return outcome


def deliver(
    functions: Functions, shard_id: str, records: Sequence[dict[str, Any]], *, attempts: int = DEFAULT_ATTEMPTS
) -> None:
    """Hand `records` (GetRecords records of one shard, in order) to the consumer in batches, each retried from its
    first failed record (`batchItemFailures`) or whole (a failed invocation) up to `attempts` times; raises
    `RedriveFailed` when a batch still fails."""
    for whole in _batches(records):
        batch, tries = whole, 0
        while batch:
            tries += 1
            try:
                response = functions.consume(shard_id, batch)
            except Exception as error:
                failed_from, reason = 0, f"{type(error).__name__}: {error}"
            else:
                failures = (response if isinstance(response, dict) else {}).get("batchItemFailures") or []
                if not failures:
                    break
                positions = {str(r["SequenceNumber"]): i for i, r in enumerate(batch)}
                found = [positions.get(str(f.get("itemIdentifier"))) for f in failures if isinstance(f, dict)]
                failed_from = min((i for i in found if i is not None), default=0)
                reason = f"the consumer reported record {batch[failed_from]['SequenceNumber']} failed"
            batch = batch[failed_from:]
            if tries >= attempts:
                raise RedriveFailed(f"{len(batch)} records of {shard_id} failed {tries} times: {reason}")
            time.sleep(min(2.0, 0.2 * 2**tries))


def _batches(records: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(record["Data"]) * 4 // 3 + 512  # base64 plus the event's envelope
        if current and (len(current) >= MAX_BATCH_RECORDS or size + record_size > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        batches.append(current)
    return batches


def record_sources(records: Sequence[dict[str, Any]]) -> list[str]:
    """The objects (s3://bucket/key) the records were read from: canonical records carry their source; raw rows
    (another producer's) and unreadable records name none."""
    sources: set[str] = set()
    for record in records:
        try:
            source = orjson.loads(record["Data"]).get("source")
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            continue
        if isinstance(source, dict) and source.get("key"):
            sources.add(f"s3://{source.get('bucket') or '?'}/{source['key']}")
    return sorted(sources)


# ---------------------------------------------------------------- the producer's dead-letter queue


def _redrive_event(functions: Functions, message: Message, dry_run: bool) -> Outcome:
    outcome = Outcome(DEAD_LETTER, message.message_id, UNREADABLE)
    try:
        event = orjson.loads(message.body)
    except orjson.JSONDecodeError as error:
        outcome.detail = f"not JSON: {error}"
        return outcome
    outcome.sources = event_objects(event)
    if not outcome.sources:
        outcome.detail = "neither an S3 event nor a producer continuation"
        return outcome
    if dry_run:
        outcome.action = WOULD_REDRIVE
        return outcome
    try:
        functions.produce(event)
    except Exception as error:
        outcome.action, outcome.detail = FAILED, f"{type(error).__name__}: {error}"
        return outcome
    outcome.action = REDRIVEN
    return outcome


def event_objects(event: Any) -> list[str]:
    """The objects an S3 event (keys URL-encoded, as S3 sends them) or a producer continuation is about."""
    if not isinstance(event, dict):
        return []
    if isinstance(event.get(CONTINUATION), list):
        jobs = [job for job in event[CONTINUATION] if isinstance(job, dict)]
        return sorted({f"s3://{job.get('bucket')}/{job.get('key')}" for job in jobs})
    objects = set()
    for item in event.get("Records") or []:
        s3 = item.get("s3") if isinstance(item, dict) else None
        if isinstance(s3, dict):
            bucket, key = s3.get("bucket", {}).get("name"), s3.get("object", {}).get("key")
            if bucket and key:
                objects.add(f"s3://{bucket}/{unquote_plus(key)}")
    return sorted(objects)
