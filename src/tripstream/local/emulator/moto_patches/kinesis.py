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

:func:`apply` replaces those four methods with versions that keep, beside each shard's ``records``
dict, a sorted list of its sequence numbers and a lock:

* ``put_record``: assigning ``max + 1`` and inserting happen under the shard's lock; O(1).
* ``get_max_sequence_number``/``get_min_sequence_number``: O(1).
* ``get_records``: bisect to the first record after the iterator's position, then slice;
  O(log n + limit). Its return value is unchanged: ``(records, last sequence number, millis behind latest)``.

moto itself replaces a shard's dict wholesale (``shard.records = OrderedDict()`` in ``split_shard``)
and could in principle write to it directly; the index therefore remembers which dict object, of
which length, it was built from and rebuilds itself (once, O(n log n)) when either differs.
"""

from __future__ import annotations

import bisect
import inspect
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final

import moto
from moto.kinesis import models as kinesis_models

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
}
_RECORD_SIGNATURE: Final = ("self", "partition_key", "data", "sequence_number", "explicit_hash_key")

_MARKER: Final = "_tripstream_original_methods"  # set on the Shard class while patched
_INDEX_ATTRIBUTE: Final = "_tripstream_index"  # set on each Shard instance on first use

_apply_lock = threading.Lock()
_index_creation_lock = threading.Lock()


class _ShardIndex:
    """A shard's lock and the sorted sequence numbers of its ``records`` dict."""

    __slots__ = ("indexed_records", "lock", "sequence_numbers")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.indexed_records: dict[int, Any] | None = None
        self.sequence_numbers: list[int] = []

    def sync(self, records: dict[int, Any]) -> list[int]:
        """Sorted sequence numbers of ``records``; rebuilt if moto replaced or changed the dict.

        The caller holds :attr:`lock`.
        """
        if records is not self.indexed_records or len(records) != len(self.sequence_numbers):
            self.indexed_records = records
            self.sequence_numbers = sorted(records)
        return self.sequence_numbers


def _index_of(shard: Any) -> _ShardIndex:
    index: _ShardIndex | None = shard.__dict__.get(_INDEX_ATTRIBUTE)
    if index is None:
        with _index_creation_lock:
            index = shard.__dict__.get(_INDEX_ATTRIBUTE)
            if index is None:
                index = _ShardIndex()
                setattr(shard, _INDEX_ATTRIBUTE, index)
    return index


def _put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    index = _index_of(self)
    with index.lock:
        sequence_numbers = index.sync(self.records)
        sequence_number = (sequence_numbers[-1] if sequence_numbers else 0) + 1
        self.records[sequence_number] = kinesis_models.Record(partition_key, data, sequence_number, explicit_hash_key)
        sequence_numbers.append(sequence_number)
    return str(sequence_number)


def _get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    """The records after ``last_sequence_id``, at most ``limit`` of them (``None``: no limit).

    Returns what moto's own method returns: the records, the sequence number of the last one
    returned (``last_sequence_id`` as an int when none are), and how many milliseconds the last
    one returned was created before the newest record of the shard (0 when none are returned).
    A non-positive ``limit`` (which botocore never sends) means no limit.
    """
    last_sequence_int = int(last_sequence_id)
    index = _index_of(self)
    with index.lock:
        sequence_numbers = index.sync(self.records)
        start = bisect.bisect_right(sequence_numbers, last_sequence_int)
        stop = len(sequence_numbers)
        if limit is not None and limit > 0:
            stop = min(stop, start + limit)
        if start >= stop:
            return [], last_sequence_int, 0
        records = [self.records[number] for number in sequence_numbers[start:stop]]
        newest = self.records[sequence_numbers[-1]]
        last_returned_number = sequence_numbers[stop - 1]
    secs_behind_latest = newest.created_at - records[-1].created_at
    return records, last_returned_number, int(secs_behind_latest * 1000)


def trim_shard(shard: Any, cutoff: float) -> int:
    """Drop the shard's records created before ``cutoff`` (unix time), as Kinesis does past the retention period.

    The newest record is always kept: moto numbers the next record ``last key + 1``, so emptying a shard would
    restart its numbering at 1 and every iterator and checkpoint beyond that would skip the new records.
    """
    index = _index_of(shard)
    with index.lock:
        sequence_numbers = index.sync(shard.records)
        expired = 0
        while expired < len(sequence_numbers) - 1 and shard.records[sequence_numbers[expired]].created_at < cutoff:
            expired += 1
        for number in sequence_numbers[:expired]:
            del shard.records[number]
        del sequence_numbers[:expired]
    return expired


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
    index = _index_of(self)
    with index.lock:
        sequence_numbers = index.sync(self.records)
        return sequence_numbers[-1] if sequence_numbers else 0


def _get_min_sequence_number(self: Any) -> int:
    index = _index_of(self)
    with index.lock:
        sequence_numbers = index.sync(self.records)
        return sequence_numbers[0] if sequence_numbers else 0


_REPLACEMENTS: Final[Mapping[str, Callable[..., Any]]] = {
    "put_record": _put_record,
    "get_records": _get_records,
    "get_max_sequence_number": _get_max_sequence_number,
    "get_min_sequence_number": _get_min_sequence_number,
}


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
    if record_class is None or parameter_names(record_class.__init__) != _RECORD_SIGNATURE:
        problems.append(f"Record.__init__ does not take {_RECORD_SIGNATURE}")
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


def revert() -> None:
    shard_class = kinesis_models.Shard
    originals: dict[str, Any] | None = vars(shard_class).get(_MARKER)
    if originals is None:
        return
    for name, original in originals.items():
        setattr(shard_class, name, original)
    delattr(shard_class, _MARKER)


def is_applied() -> bool:
    return _MARKER in vars(kinesis_models.Shard)
