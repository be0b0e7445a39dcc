"""moto's Kinesis shard made safe for concurrent writers and O(log n) to read (inside the emulator's process only).

moto 5.2.1's ``moto.kinesis.models.Shard`` keeps a shard's records in a dict keyed by an integer
sequence number (1, 2, 3, ... per shard, in insertion order) and has two problems under the load
tripstream puts on it:

* ``put_record`` reads the highest sequence number and then inserts ``max + 1`` without a lock.
  moto's server is threaded, so two concurrent PutRecords calls can both pick the same number and
  the second insert silently replaces the first record (both callers are told they succeeded).
* ``get_max_sequence_number``/``get_min_sequence_number`` copy every key into a list, and
  ``get_records`` walks the dict from the first record on every call, so every put and every read
  gets linearly slower as a shard fills.

:func:`apply` replaces those methods with versions whose records live in the emulator's SQLite store
(:mod:`.storage`; issue 21: moto's objects of base64 text cost memory per record without bound), one row per
record, its data as bytes, under the store's lock:

* ``put_record``: assigning ``max + 1`` and inserting happen under the lock; O(log n). A PutRecords call's
  records are one SQLite transaction (one commit per call), each record's data decoded from base64 once and a
  shard's records inserted by one statement, with moto's limits and answer.
* ``get_max_sequence_number``: O(1) (kept beside the shard); ``get_min_sequence_number``: O(log n).
* ``get_records``: one range read from the iterator's position; O(log n + limit). Its return value is unchanged:
  ``(records, last sequence number, millis behind latest)``; a returned record's ``to_json`` gives the bytes.

The PutRecords and GetRecords answers are written straight as JSON (:mod:`.json_answers`), not by moto's generic
serialiser.

moto itself replaces a shard's dict wholesale (``shard.records = OrderedDict()`` in ``split_shard``) and writes
records into it; a shard whose ``records`` is not the store's mapping has them moved to the store on next use.

A stream's shards get their rows by name (``Stream.init_shards``: account, region, stream, shard id). In a kept store
(``up --state-dir``) the next emulator that creates the same stream re-attaches to them: the records not yet
consumed are there, keep their sequence numbers, and new ones continue past the highest; the stream keeps its first
creation time, so the local event source mapping's checkpoints (named by it) still apply. DeleteStream drops the
rows. Shards made by a split or a merge are not re-attached (tripstream never reshards).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import moto
from moto.kinesis import exceptions as kinesis_exceptions
from moto.kinesis import models as kinesis_models
from moto.kinesis import responses as kinesis_responses

from tripstream.local.emulator.moto_patches.json_answers import plain_json
from tripstream.local.emulator.moto_patches.storage import Store, store
from tripstream.local.emulator.moto_patches.version import (
    TESTED_MOTO_VERSION,
    parameter_names,
    shape_error,
)

#: Each patched method of ``Shard`` with the parameter names moto 5.2.1 gives it.
_EXPECTED_SIGNATURES: Final[Mapping[str, tuple[str, ...]]] = {
    "put_record": ("self", "partition_key", "data", "explicit_hash_key"),
    "get_records": ("self", "last_sequence_id", "limit"),
    "get_max_sequence_number": ("self",),
    "get_min_sequence_number": ("self",),
    "get_sequence_number_at": ("self", "at_timestamp"),
}
_RECORD_SIGNATURE: Final = ("self", "partition_key", "data", "sequence_number", "explicit_hash_key")

_MARKER: Final = "_tripstream_original_methods"  # set on the Shard class while patched
_BACKEND_MARKER: Final = "_tripstream_original_wrapped"  # set on KinesisBackend while patched: the wrapped methods
_PLAIN_ANSWERS: Final = ("put_records", "get_records")
_CONTENT_TYPE: Final = "application/x-amz-json-1.1"

# moto 5.2.1's PutRecords limits (as Kinesis's): records per call, bytes per call and per record (data + key).
_MAX_RECORDS: Final = 500
_MAX_CALL_BYTES: Final = 5 * 1024 * 1024
_MAX_RECORD_BYTES: Final = 1024 * 1024

_apply_lock = threading.Lock()
_records_creation_lock = threading.Lock()
_clock: Callable[[], float] = time.time  # when a record arrives (tests set it)


class _StoredRecord(kinesis_models.Record):
    """A record read back from the store: its data as the bytes the writer sent (no base64 text held)."""

    def __init__(
        self, partition_key: str, payload: bytes, sequence_number: int, explicit_hash_key: str | None, created_at: float
    ) -> None:
        self.partition_key = partition_key
        self.payload = payload
        self.sequence_number = sequence_number
        self.explicit_hash_key = explicit_hash_key  # type: ignore[assignment]  # moto's None when not sent
        self.created_at = created_at
        self.created_at_datetime = datetime.fromtimestamp(created_at, UTC).replace(tzinfo=None)

    def __eq__(self, other: object) -> bool:  # read twice, the same record
        if not isinstance(other, _StoredRecord):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return (self.sequence_number, self.partition_key, self.payload, self.explicit_hash_key, self.created_at)

    @property
    def data(self) -> str:  # type: ignore[override]  # moto's Record holds the base64 text, this one the bytes
        return base64.b64encode(self.payload).decode("ascii")

    def to_json(self) -> dict[str, Any]:
        return {
            "Data": self.payload,
            "PartitionKey": self.partition_key,
            "SequenceNumber": str(self.sequence_number),
            "ApproximateArrivalTimestamp": self.created_at_datetime,
        }


def _payload(data: Any) -> bytes:
    """The bytes a record carries: moto holds them as base64 text (anything else is kept as its UTF-8 text)."""
    if isinstance(data, bytes):
        return data
    decoded = _decoded(data)
    return str(data).encode() if decoded is None else decoded


def _decoded(data: Any) -> bytes | None:
    """``data`` decoded from strict base64 (RFC 4648: its alphabet, padding only at the end), None if it is not."""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError, TypeError):
        return None


class DiskRecords(MutableMapping[int, Any]):
    """A shard's records in the store, shaped as moto's ``Shard.records`` (sequence number -> record)."""

    def __init__(self, backing: Store, name: str | None = None) -> None:
        self.store = backing
        self.owner = backing.owner_id(None) if name is None else backing.owner_for(name)
        with backing.lock:  # the highest sequence number present (0: none); a re-attached shard goes on from it
            row = backing.connection.execute("SELECT MAX(n) FROM records WHERE s = ?", (self.owner,)).fetchone()
        self.last = int(row[0] or 0)

    def append(self, partition_key: str, data: Any, explicit_hash_key: str | None) -> int:
        return self.append_many([(partition_key, explicit_hash_key, _payload(data))])[0]

    def append_many(self, records: Sequence[tuple[str, str | None, bytes]]) -> range:
        """Append (partition key, explicit hash key, data) records with one statement; their sequence numbers."""
        with self.store.lock:
            first, created = self.last + 1, _clock()
            self.store.connection.executemany(
                "INSERT INTO records (s, n, k, x, d, c) VALUES (?, ?, ?, ?, ?, ?)",
                [(self.owner, first + offset, *record, created) for offset, record in enumerate(records)],
            )
            self.last = first + len(records) - 1
        return range(first, first + len(records))

    def after(self, number: int, limit: int) -> list[_StoredRecord]:
        with self.store.lock:
            rows = self.store.connection.execute(
                "SELECT k, d, n, x, c FROM records WHERE s = ? AND n > ? ORDER BY n LIMIT ?",
                (self.owner, number, limit),
            ).fetchall()
        return [_StoredRecord(k, bytes(d), n, x, c) for k, d, n, x, c in rows]

    def first_number(self) -> int:
        with self.store.lock:
            row = self.store.connection.execute("SELECT MIN(n) FROM records WHERE s = ?", (self.owner,)).fetchone()
        return int(row[0] or 0)

    def trim_before(self, cutoff: float) -> int:
        """Delete the records created before ``cutoff``, except the newest."""
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT n FROM records WHERE s = ? AND c >= ? ORDER BY n LIMIT 1", (self.owner, cutoff)
            ).fetchone()
            keep_from = self.last if row is None else int(row[0])
            cursor = self.store.connection.execute("DELETE FROM records WHERE s = ? AND n < ?", (self.owner, keep_from))
        return cursor.rowcount

    def number_before(self, at_timestamp: float) -> int:
        """moto's ``get_sequence_number_at``: 0 when at or before the first record, else the last one before."""
        with self.store.lock:
            first = self.store.connection.execute(
                "SELECT c FROM records WHERE s = ? ORDER BY n LIMIT 1", (self.owner,)
            ).fetchone()
            if first is None or at_timestamp <= first[0]:
                return 0
            row = self.store.connection.execute(
                "SELECT n FROM records WHERE s = ? AND c < ? ORDER BY n DESC LIMIT 1", (self.owner, at_timestamp)
            ).fetchone()
        return int(row[0])

    # --- moto's mapping (resharding, tests) ------------------------------------------------------------------
    def __getitem__(self, number: int) -> _StoredRecord:
        records = self.after(number - 1, 1)
        if not records or records[0].sequence_number != number:
            raise KeyError(number)
        return records[0]

    def __setitem__(self, number: int, record: Any) -> None:
        with self.store.lock:
            self.store.connection.execute(
                "INSERT OR REPLACE INTO records (s, n, k, x, d, c) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.owner,
                    number,
                    record.partition_key,
                    record.explicit_hash_key,
                    record.payload if isinstance(record, _StoredRecord) else _payload(record.data),
                    record.created_at,
                ),
            )
            self.last = max(self.last, number)

    def __delitem__(self, number: int) -> None:
        with self.store.lock:
            cursor = self.store.connection.execute("DELETE FROM records WHERE s = ? AND n = ?", (self.owner, number))
            if cursor.rowcount == 0:
                raise KeyError(number)
            if number == self.last:
                row = self.store.connection.execute("SELECT MAX(n) FROM records WHERE s = ?", (self.owner,)).fetchone()
                self.last = int(row[0] or 0)

    def __iter__(self) -> Iterator[int]:
        number = 0
        while page := self.after(number, 1000):
            yield from (record.sequence_number for record in page)
            number = page[-1].sequence_number

    def __reversed__(self) -> Iterator[int]:
        with self.store.lock:
            numbers = [
                row[0]
                for row in self.store.connection.execute(
                    "SELECT n FROM records WHERE s = ? ORDER BY n DESC", (self.owner,)
                )
            ]
        return iter(numbers)

    def __len__(self) -> int:
        with self.store.lock:
            return int(
                self.store.connection.execute("SELECT COUNT(*) FROM records WHERE s = ?", (self.owner,)).fetchone()[0]
            )

    def clear(self) -> None:
        with self.store.lock:
            self.store.connection.execute("DELETE FROM records WHERE s = ?", (self.owner,))
            self.last = 0


def _records_of(shard: Any) -> DiskRecords:
    """The shard's records in the store; moto's own dict (a new shard, or one moto replaced) is moved there once."""
    records = shard.__dict__.get("records")
    if isinstance(records, DiskRecords):
        return records
    with _records_creation_lock:
        records = shard.__dict__.get("records")
        if isinstance(records, DiskRecords):
            return records
        disk = DiskRecords(store())
        with disk.store.transaction():
            for number, record in sorted((records or {}).items()):
                disk[number] = record
        shard.records = disk
        return disk


def _stream_name(stream: Any) -> str:
    return f"kinesis/{stream.account_id}/{stream.region}/{stream.stream_name}"


def _init_shards(original: Callable[..., Any]) -> Callable[..., Any]:
    """A stream's new shards on their named rows; in a kept store, a stream created again is the one kept: its
    records and its first creation time."""

    def init_shards(self: Any, shard_count: int) -> None:
        original(self, shard_count)
        backing = store()
        name = _stream_name(self)
        with backing.transaction():  # new shards: no other thread has them yet
            for shard_id, shard in self.shards.items():
                shard.records = DiskRecords(backing, f"{name}/{shard_id}")
            if backing.persistent:
                kept = backing.meta(name)
                if kept is None:
                    backing.set_meta(name, json.dumps({"created": self.creation_datetime.isoformat()}))
                else:
                    self.creation_datetime = datetime.fromisoformat(json.loads(kept)["created"])

    init_shards.__wrapped__ = original  # type: ignore[attr-defined]
    return init_shards


def _delete_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    """A deleted stream's records dropped (and, in a kept store, its creation time: created again, it is new)."""

    def delete_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        stream = original(self, *args, **kwargs)
        backing = store()
        with backing.transaction():
            for shard in stream.shards.values():
                _records_of(shard).clear()
            backing.set_meta(_stream_name(stream), None)
        return stream

    delete_stream.__wrapped__ = original  # type: ignore[attr-defined]
    return delete_stream


def _put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    return str(_records_of(self).append(partition_key, data, explicit_hash_key))


def _get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    """The records after ``last_sequence_id``, at most ``limit`` of them (``None``: no limit).

    Returns what moto's own method returns: the records, the sequence number of the last one
    returned (``last_sequence_id`` as an int when none are), and how many milliseconds the last
    one returned was created before the newest record of the shard (0 when none are returned).
    A non-positive ``limit`` (which botocore never sends) means no limit.
    """
    last_sequence_int = int(last_sequence_id)
    records_of = _records_of(self)
    with records_of.store.lock:
        records = records_of.after(last_sequence_int, limit if limit is not None and limit > 0 else -1)
        if not records:
            return [], last_sequence_int, 0
        newest = records[-1] if records[-1].sequence_number == records_of.last else records_of[records_of.last]
    secs_behind_latest = newest.created_at - records[-1].created_at
    return records, records[-1].sequence_number, int(secs_behind_latest * 1000)


def trim_shard(shard: Any, cutoff: float) -> int:
    """Drop the shard's records created before ``cutoff`` (unix time), as Kinesis does past the retention period.

    The newest record is always kept: moto numbers the next record ``last key + 1``, so emptying a shard would
    restart its numbering at 1 and every iterator and checkpoint beyond that would skip the new records.
    """
    return _records_of(shard).trim_before(cutoff)


def expire_records(now: float | None = None) -> int:
    """Trim every shard of every stream of every account and region to its stream's retention period."""
    from moto.kinesis.models import kinesis_backends

    now = time.time() if now is None else now
    dropped = 0
    for regions in list(kinesis_backends.values()):
        for backend in list(regions.values()):
            for stream in list(backend.streams.values()):
                cutoff = now - stream.retention_period_hours * 3600
                for shard in list(stream.shards.values()):
                    dropped += trim_shard(shard, cutoff)
    return dropped


def start_retention_sweeper(interval_seconds: float = 60.0) -> threading.Thread:
    """Expire old stream records every ``interval_seconds``, in a daemon thread of the emulator's process."""

    def sweep() -> None:
        while True:
            time.sleep(interval_seconds)
            try:
                expire_records()
            except Exception as error:  # a sweep must never take the emulator down
                warnings.warn(f"expiring Kinesis records failed: {error}", RuntimeWarning, stacklevel=1)

    thread = threading.Thread(target=sweep, name="kinesis-retention", daemon=True)
    thread.start()
    return thread


def _get_max_sequence_number(self: Any) -> int:
    return _records_of(self).last


def _get_min_sequence_number(self: Any) -> int:
    return _records_of(self).first_number()


def _get_sequence_number_at(self: Any, at_timestamp: float) -> int:
    return _records_of(self).number_before(at_timestamp)


def _put_records_at_once(original: Callable[..., Any]) -> Callable[..., Any]:
    """PutRecords with moto's limits and answer, in one SQLite transaction (one WAL commit per call, not per record),
    each record's data decoded once (moto decodes it twice) and a shard's records inserted by one statement (moto: one
    by one). Data that is not base64 (botocore never sends any), a key no shard covers, or a stream with moto's own
    event source mappings (which see each record) go moto's way, in one transaction too."""

    def put_records(self: Any, stream_arn: str | None, stream_name: str | None, records: list[dict[str, Any]]) -> Any:
        stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        if len(records) > _MAX_RECORDS:
            raise kinesis_exceptions.TooManyRecords
        payloads = [_decoded(record.get("Data", "")) for record in records]
        if stream.lambda_event_source_mappings or None in payloads:
            with store().transaction():
                return original(self, stream_arn, stream_name, records)
        sizes = [
            len(payload) + len(record.get("PartitionKey", ""))  # type: ignore[arg-type]
            for payload, record in zip(payloads, records, strict=True)
        ]
        if sum(sizes) > _MAX_CALL_BYTES:
            raise kinesis_exceptions.TotalRecordsSizeExceedsLimit
        if (over := next((index for index, size in enumerate(sizes) if size > _MAX_RECORD_BYTES), None)) is not None:
            raise kinesis_exceptions.RecordSizeExceedsLimit(position=over + 1)
        by_shard: dict[Any, list[int]] = {}
        for index, record in enumerate(records):
            shard = stream.get_shard_for_key(record.get("PartitionKey"), record.get("ExplicitHashKey"))
            if shard is None:
                with store().transaction():
                    return original(self, stream_arn, stream_name, records)
            by_shard.setdefault(shard, []).append(index)
        answers: list[dict[str, str]] = [{}] * len(records)
        with store().transaction():
            for shard, indexes in by_shard.items():
                rows = [(records[i]["PartitionKey"], records[i].get("ExplicitHashKey"), payloads[i]) for i in indexes]
                for index, number in zip(indexes, _records_of(shard).append_many(rows), strict=True):  # type: ignore[arg-type]
                    answers[index] = {"SequenceNumber": str(number), "ShardId": shard.shard_id}
        return {"FailedRecordCount": 0, "Records": answers}

    put_records.__wrapped__ = original  # type: ignore[attr-defined]
    return put_records


_REPLACEMENTS: Final[Mapping[str, Callable[..., Any]]] = {
    "put_record": _put_record,
    "get_records": _get_records,
    "get_max_sequence_number": _get_max_sequence_number,
    "get_min_sequence_number": _get_min_sequence_number,
    "get_sequence_number_at": _get_sequence_number_at,
}


# Methods of moto's stream and backend wrapped (the original still runs): (class, name, wrapper).
_WRAPPERS: Final = (
    (kinesis_models.KinesisBackend, "put_records", _put_records_at_once),
    (kinesis_models.KinesisBackend, "delete_stream", _delete_stream),
    (kinesis_models.Stream, "init_shards", _init_shards),
    *(
        (kinesis_responses.KinesisResponse, name, lambda method: plain_json(method, _CONTENT_TYPE))
        for name in _PLAIN_ANSWERS
    ),
)


def _check_moto_shape(shard_class: Any, record_class: Any) -> None:
    """Raise :class:`MotoVersionError` unless moto's classes look like moto 5.2.1's."""
    problems: list[str] = []
    for name, expected in _EXPECTED_SIGNATURES.items():
        method = getattr(shard_class, name, None)
        if not callable(method):
            problems.append(f"Shard.{name} is missing")
        elif parameter_names(method) != expected:
            problems.append(f"Shard.{name}{parameter_names(method)} is not Shard.{name}{expected}")
    try:
        init_source = inspect.getsource(shard_class.__init__)
    except (OSError, TypeError):  # no source shipped: the attribute is checked on first use instead
        init_source = "self.records"
    if "self.records" not in init_source:
        problems.append("Shard.__init__ no longer sets self.records")
    for name in _PLAIN_ANSWERS:
        answer = getattr(kinesis_responses.KinesisResponse, name, None)
        if answer is None or parameter_names(answer) != ("self",):
            problems.append(f"KinesisResponse.{name} is not a handler method taking only self")
    if record_class is None or parameter_names(record_class.__init__) != _RECORD_SIGNATURE:
        problems.append(f"Record.__init__ does not take {_RECORD_SIGNATURE}")
    stream_class, backend_class = kinesis_models.Stream, kinesis_models.KinesisBackend
    if parameter_names(stream_class.init_shards) != ("self", "shard_count"):
        problems.append("Stream.init_shards does not take (self, shard_count)")
    if parameter_names(backend_class.delete_stream) != ("self", "stream_arn", "stream_name"):
        problems.append("KinesisBackend.delete_stream does not take (self, stream_arn, stream_name)")
    if parameter_names(backend_class.put_records) != ("self", "stream_arn", "stream_name", "records"):
        problems.append("KinesisBackend.put_records does not take (self, stream_arn, stream_name, records)")
    if parameter_names(stream_class.get_shard_for_key) != ("self", "partition_key", "explicit_hash_key"):
        problems.append("Stream.get_shard_for_key does not take (self, partition_key, explicit_hash_key)")
    missing = [
        name
        for name in ("TooManyRecords", "TotalRecordsSizeExceedsLimit", "RecordSizeExceedsLimit")
        if not hasattr(kinesis_exceptions, name)
    ]
    if missing:
        problems.append(f"moto.kinesis.exceptions has no {', '.join(missing)}")
    # init_shards (patched) reads the stream's name, account, region and creation time: set before it is called.
    set_before = ("self.stream_name", "self.creation_datetime", "self.account_id", "self.region")
    try:
        stream_init = inspect.getsource(stream_class.__init__)
    except (OSError, TypeError):  # no source shipped: checked on first use instead
        stream_init = " ".join(set_before) + " self.init_shards( self.lambda_event_source_mappings"
    if "self.init_shards(" not in stream_init or any(
        stream_init.find(name) < 0 or stream_init.find(name) > stream_init.find("self.init_shards(")
        for name in set_before
    ):
        problems.append(f"Stream.__init__ no longer sets {', '.join(set_before)} before self.init_shards(...)")
    if "self.lambda_event_source_mappings" not in stream_init:  # read by put_records (patched)
        problems.append("Stream.__init__ no longer sets self.lambda_event_source_mappings")
    if problems:
        raise shape_error("Kinesis Shard", problems)


def apply() -> None:
    """Patch moto's Kinesis ``Shard``. Idempotent; the caller holds the patches' lock."""
    shard_class = kinesis_models.Shard
    if _MARKER in vars(shard_class):
        return
    _check_moto_shape(shard_class, getattr(kinesis_models, "Record", None))
    if moto.__version__ != TESTED_MOTO_VERSION:
        warnings.warn(
            f"tripstream's Kinesis patches were measured on moto {TESTED_MOTO_VERSION}, "
            f"not {moto.__version__}; the patched methods still have the expected shape.",
            RuntimeWarning,
            stacklevel=3,
        )
    originals = {name: getattr(shard_class, name) for name in _REPLACEMENTS}
    for name, replacement in _REPLACEMENTS.items():
        setattr(shard_class, name, replacement)
    setattr(shard_class, _MARKER, originals)
    wrapped = {}
    for target, name, wrapper in _WRAPPERS:
        wrapped[(target, name)] = vars(target)[name]
        setattr(target, name, wrapper(vars(target)[name]))
    setattr(kinesis_models.KinesisBackend, _BACKEND_MARKER, wrapped)


def revert() -> None:
    shard_class = kinesis_models.Shard
    originals: dict[str, Any] | None = vars(shard_class).get(_MARKER)
    if originals is None:
        return
    for name, original in originals.items():
        setattr(shard_class, name, original)
    delattr(shard_class, _MARKER)
    backend_class = kinesis_models.KinesisBackend
    for (target, name), original in vars(backend_class)[_BACKEND_MARKER].items():
        setattr(target, name, original)
    delattr(backend_class, _BACKEND_MARKER)


def is_applied() -> bool:
    return _MARKER in vars(kinesis_models.Shard)
