"""Where the emulator keeps what it holds: one SQLite database on disk, not Python objects (issue 21).

moto keeps every DynamoDB item (a dict of ``DynamoType`` objects) and every Kinesis record (an object holding base64
text) in memory: about 9.8 KB per trip through tripstream's pipeline, growing without bound. Here both live in one
SQLite file, each item as one row (its DynamoDB JSON, ``marshal``-ed), each record as one row (its data as bytes):
the emulator's memory is the SQLite page cache and what the requests in flight hold, whatever the data's size.

One connection, one lock: moto's server is threaded, SQLite calls are short and the GIL serialises them anyway.
The file is written in WAL mode with ``synchronous=OFF``: a commit is written to the OS, not synced to the disk (a
checkpoint with fsync was most of a commit's cost); a killed emulator (``kill -9``) loses nothing committed, a
power cut may lose the last seconds.
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
from tripstream.local.emulator.environment import STORE_DIR_VARIABLE

_FILE_NAME: Final = "emulator.sqlite3"
_CACHE_KIB: Final = 16 * 1024  # SQLite's page cache: the only part of the data that is held in memory

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS items (t INTEGER NOT NULL, h TEXT NOT NULL, r TEXT NOT NULL, v BLOB NOT NULL,"
    " PRIMARY KEY (t, h, r)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS records (s INTEGER NOT NULL, n INTEGER NOT NULL, k TEXT NOT NULL, x TEXT,"
    " d BLOB NOT NULL, c REAL NOT NULL, PRIMARY KEY (s, n)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS owners (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)",
)


class Store:
    """The SQLite database behind the patched tables and shards of one emulator process."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
        for statement in _SCHEMA:
            self.connection.execute(statement)
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
    """This process's store: in ``$TRIPSTREAM_EMULATOR_STORE_DIR`` if set, else in a scratch folder removed at exit."""
    if not _stores:
        with _store_lock:
            if not _stores:
                directory = os.environ.get(STORE_DIR_VARIABLE)
                if not directory:
                    import atexit

                    directory = tempfile.mkdtemp(prefix="tripstream-store-")
                    atexit.register(shutil.rmtree, directory, True)
                Path(directory).mkdir(parents=True, exist_ok=True)
                _stores.append(Store(Path(directory) / _FILE_NAME))
    return _stores[0]
