"""Where the emulator keeps what it holds: one SQLite database on disk, not Python objects (issue 21).

moto keeps every DynamoDB item (a dict of ``DynamoType`` objects) and every Kinesis record (an object holding base64
text) in memory: about 9.8 KB per trip through tripstream's pipeline, growing without bound. Here both live in one
SQLite file, each item as one row (its DynamoDB JSON, ``marshal``-ed), each record as one row (its data as bytes):
the emulator's memory is the SQLite page cache and what the requests in flight hold, whatever the data's size.

One connection, one lock: moto's server is threaded, SQLite calls are short and the GIL serialises them anyway.
The file is written in WAL mode with ``synchronous=OFF``: a commit is written to the OS, not synced to the disk (a
checkpoint with fsync was most of a commit's cost); a killed emulator (``kill -9``) loses nothing committed, a
power cut may lose the last seconds.

Two lives for the file:

- scratch (``$TRIPSTREAM_EMULATOR_STORE_DIR``, or a temporary folder): thrown away with the emulator. Every table and
  shard gets a number never given before (:meth:`Store.owner_for`), so a table created again (after moto's reset,
  say) starts empty, as in moto.
- kept (``$TRIPSTREAM_EMULATOR_STATE_DIR``: ``tripstream up --state-dir``): the file outlives the emulator and IS
  the persistence of the tables and the stream. Tables and shards are named (account, region, table or stream and
  shard, key schema), so the next emulator that creates the same table or stream (``up`` deploys the same stack
  again) re-attaches to its rows: items, stream records with their sequence numbers, and the stream's creation
  time (:meth:`Store.meta`: the local event source mapping's checkpoints are named by it). Nothing has to be saved
  again when ``up`` stops or an object arrives: what is committed is on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

#: The emulator's data directory, set by :class:`tripstream.local.emulator.server.Emulator` for its child.
from tripstream.local.emulator.environment import STATE_DIR_VARIABLE, STORE_DIR_VARIABLE

FILE_NAME: Final = "emulator.sqlite3"
# The layout of the file (``PRAGMA user_version``): a kept file of another layout is refused, not misread. Version 1
# kept the items in a WITHOUT ROWID table keyed (t, h, r); version 2 in a rowid table with a unique index on the same
# key: the same statements read and write both, so a version 1 file is used as it is.
STORE_VERSION: Final = 2
_READABLE_VERSIONS: Final = frozenset({1, STORE_VERSION})
_CACHE_KIB: Final = 16 * 1024  # SQLite's page cache: the only part of the data that is held in memory

# Items are written in the order of their keys' hashes (trip_ids): in a WITHOUT ROWID table each insert lands on a
# random leaf holding only ~10 of these ~400-byte rows, so every row dirtied a page of its own. Appended in rowid
# order, with only the key in the (random) index, an insert costs half (measured: 13 vs 28 µs a row at 3M rows).
_ITEMS: Final = (
    "CREATE TABLE IF NOT EXISTS items (t INTEGER NOT NULL, h TEXT NOT NULL, r TEXT NOT NULL, v BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (t, h, r)",
)
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS records (s INTEGER NOT NULL, n INTEGER NOT NULL, k TEXT NOT NULL, x TEXT,"
    " d BLOB NOT NULL, c REAL NOT NULL, PRIMARY KEY (s, n)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS owners (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)


class StoreError(RuntimeError):
    """A kept store that this version of tripstream cannot read (the message names the file)."""


class Store:
    """The SQLite database behind the patched tables and shards of one emulator process."""

    def __init__(self, path: Path, *, persistent: bool = False) -> None:
        self.path = path
        self.persistent = persistent
        self.lock = threading.RLock()
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=OFF",  # what is committed is in the OS's cache: it survives the process (kill -9)
            "PRAGMA wal_autocheckpoint=8000",  # checkpoint every ~32 MB of WAL, not every 4 MB
            f"PRAGMA cache_size=-{_CACHE_KIB}",
            "PRAGMA temp_store=FILE",
        ):
            self.connection.execute(pragma)
        version = int(self.connection.execute("PRAGMA user_version").fetchone()[0])
        if version != 0 and version not in _READABLE_VERSIONS:
            self.connection.close()
            readable = " or ".join(str(number) for number in sorted(_READABLE_VERSIONS))
            raise StoreError(f"{path}: emulator store version {version}; this tripstream reads version {readable}")
        for statement in (*(_ITEMS if version == 0 else ()), *_SCHEMA):
            self.connection.execute(statement)
        if version == 0:
            self.connection.execute(f"PRAGMA user_version={STORE_VERSION}")
        self._depth = 0

    def owner_id(self, name: str | None) -> int:
        """A number for a table or a shard: the same for the same name in the same file; unnamed, a number never
        given before in this file (a file opened again by another process holds no rows under it)."""
        with self.lock:
            if name is None:
                name = f"unnamed:{uuid.uuid4()}"
            self.connection.execute("INSERT OR IGNORE INTO owners (name) VALUES (?)", (name,))
            row = self.connection.execute("SELECT id FROM owners WHERE name = ?", (name,)).fetchone()
            return int(row[0])

    def owner_for(self, name: str) -> int:
        """The number of a named table or shard: kept by name in a kept store (a later emulator re-attaches to its
        rows), never given before in a scratch one."""
        return self.owner_id(name if self.persistent else None)

    def meta(self, name: str) -> str | None:
        """A value kept beside the rows (a stream's creation time), None when there is none."""
        with self.lock:
            row = self.connection.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str | None) -> None:
        """Keep ``value`` under ``name`` (None: forget it)."""
        with self.lock:
            if value is None:
                self.connection.execute("DELETE FROM meta WHERE name = ?", (name,))
            else:
                self.connection.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Statements applied together (one commit: a batch of records costs one WAL write, not one each)."""
        with self.lock:
            if self._depth:  # nested: part of the outer transaction
                self._depth += 1
                try:
                    yield self.connection
                finally:
                    self._depth -= 1
                return
            self.connection.execute("BEGIN")
            self._depth = 1
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            else:
                self.connection.execute("COMMIT")
            finally:
                self._depth = 0

    def close(self) -> None:
        with self.lock:
            self.connection.close()


_stores: list[Store] = []  # this process's one store, once opened
_store_lock = threading.Lock()


def store() -> Store:
    """This process's store: kept in ``$TRIPSTREAM_EMULATOR_STATE_DIR`` if set; else scratch, in
    ``$TRIPSTREAM_EMULATOR_STORE_DIR`` if set, else in a temporary folder removed at exit."""
    if not _stores:
        with _store_lock:
            if not _stores:
                kept = os.environ.get(STATE_DIR_VARIABLE)
                directory = kept or os.environ.get(STORE_DIR_VARIABLE)
                if not directory:
                    import atexit

                    directory = tempfile.mkdtemp(prefix="tripstream-store-")
                    atexit.register(shutil.rmtree, directory, True)
                Path(directory).mkdir(parents=True, exist_ok=True)
                _stores.append(Store(Path(directory) / FILE_NAME, persistent=bool(kept)))
    return _stores[0]
