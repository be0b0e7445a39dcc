"""Where the local event source mapping keeps its place in each shard: a durable file per shard.

Written atomically (temporary file, fsync, rename, fsync of the folder), so a process killed at any instant
(or a machine losing power) leaves either the old or the new checkpoint, never a torn or missing one.
A checkpoint is written only after the consumer has finished the records up to it, so a restart re-delivers at
most the batch that was in flight; the writes are idempotent, so that re-delivery duplicates nothing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson


class CheckpointStore:
    """Last fully processed sequence number per shard of one stream incarnation (in memory if no folder)."""

    def __init__(self, directory: Path | None, stream_id: str) -> None:
        # stream_id includes the stream's creation time: a re-created stream never inherits old checkpoints.
        self._directory = directory / _safe(stream_id) if directory is not None else None
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)

    def get(self, shard_id: str) -> str | None:
        with self._lock:
            if self._directory is None:
                return self._memory.get(shard_id)
            path = self._directory / f"{_safe(shard_id)}.json"
            if not path.exists():
                return None
            value = orjson.loads(path.read_bytes()).get("sequence_number")
            return str(value) if value is not None else None

    def put(self, shard_id: str, sequence_number: str) -> None:
        with self._lock:
            if self._directory is None:
                self._memory[shard_id] = sequence_number
                return
            path = self._directory / f"{_safe(shard_id)}.json"
            temporary = path.with_suffix(".tmp")
            with temporary.open("wb") as handle:
                handle.write(orjson.dumps({"shard_id": shard_id, "sequence_number": sequence_number}))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            _fsync_directory(self._directory)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows): the rename is what it offers
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
