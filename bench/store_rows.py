"""Benchmark: what writing an item costs the emulator's SQLite store as a month fills it (issue 21).

Writes consumer-sized items (the store's encoding: marshal of the DynamoDB JSON, ~400 bytes) keyed by trip_id-like
hashes (random order, as the consumer writes them), 25 per statement and 1,000 per commit as a BatchWriteItem-heavy
load does, into a store of each layout: version 2 (today's: rows in rowid order, a unique index on the key) and
version 1 (the items WITHOUT ROWID, keyed (t, h, r)). Prints microseconds of CPU per row, per window of rows, as the
table grows.

Usage: .venv/bin/python bench/store_rows.py [--rows 3000000] [--window 500000]
"""

from __future__ import annotations

import argparse
import hashlib
import marshal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import report

from tripstream.local.emulator.moto_patches.storage import FILE_NAME, Store

_ITEM = marshal.dumps({f"attribute_{n}": {"S": f"value-{'x' * 12}"} for n in range(14)})
_VERSION_1_ITEMS = (
    "CREATE TABLE items (t INTEGER NOT NULL, h TEXT NOT NULL, r TEXT NOT NULL, v BLOB NOT NULL,"
    " PRIMARY KEY (t, h, r)) WITHOUT ROWID"
)


def _store(folder: Path, version: int) -> Store:
    path = folder / FILE_NAME
    if version == 1:
        with sqlite3.connect(path) as connection:
            connection.execute(_VERSION_1_ITEMS)
            connection.execute("PRAGMA user_version=1")
    return Store(path)


def _fill(store: Store, rows: int, window: int) -> list[float]:
    """Microseconds of CPU per row, for each window of rows."""
    figures: list[float] = []
    written, cpu = 0, time.process_time()
    while written < rows:
        with store.transaction() as connection:
            for _ in range(40):
                batch = [
                    (1 + n % 4, hashlib.blake2b(str(written + n).encode(), digest_size=12).hexdigest(), "", _ITEM)
                    for n in range(25)
                ]
                connection.executemany("INSERT OR REPLACE INTO items (t, h, r, v) VALUES (?, ?, ?, ?)", batch)
                written += 25
        if written % window == 0:
            now = time.process_time()
            figures.append(round(1e6 * (now - cpu) / window, 1))
            cpu = now
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--window", type=int, default=500_000)
    args = parser.parse_args()
    figures: dict[str, Any] = {"rows": args.rows, "window": args.window}
    for version in (2, 1):
        with tempfile.TemporaryDirectory(prefix="tripstream-store-bench-") as folder:
            store = _store(Path(folder), version)
            figures[f"version_{version}_cpu_us_per_row_by_window"] = _fill(store, args.rows, args.window)
            store.close()
    report("store rows", figures)


if __name__ == "__main__":
    main()
