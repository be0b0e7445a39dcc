"""What `tripstream up --state-dir` keeps across restarts of the embedded emulator: the data, not the emulator.

moto keeps everything in memory. Its only persistence aid is a request recorder (`/moto-api/recorder/...`) that
logs every HTTP request and replays them all on demand: it grows with every poll of the stream and every scan,
replays PutRecords with new sequence numbers and timestamps, and replays the whole history to get one table back.
So tripstream saves the data itself, when `up` stops:

- the tables (the three per-trip tables, zone_hourly_stats and its markers): every item, as DynamoDB JSON (one
  item a line), written back with BatchWriteItem;
- the bucket: every object (uploaded trip files and the rejects), written back with PutObject.

Not kept: the stream's records (they were consumed into the tables; a fresh stream starts empty, and its new
creation time keeps old shard checkpoints from applying), the SQS queues' messages, and anything created outside
the stack. The stack itself is deployed again on start. A snapshot is written to a temporary folder and renamed
into place, so a crash while saving leaves the previous snapshot intact.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tripstream.aws.clients import AwsClients
from tripstream.aws.dynamodb import WriteStats, raw_items, write_items
from tripstream.aws.s3 import download_file, list_object_entries, upload_file
from tripstream.infra.stack import DeployedStack
from tripstream.pipeline.producer import new_backoff
from tripstream.settings import Settings

SNAPSHOT_VERSION = 1
SNAPSHOT_FOLDER = "snapshot"
MANIFEST = "snapshot.json"


class SnapshotError(RuntimeError):
    """A snapshot that cannot be restored (its folder is named in the message)."""


@dataclass
class SnapshotInfo:
    path: Path
    saved_at: str
    items: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    object_bytes: int = 0

    def describe(self) -> str:
        items = ", ".join(f"{table} {count:,}" for table, count in self.items.items())
        return f"{items}; {self.objects:,} objects ({self.object_bytes:,} bytes) in the bucket, saved {self.saved_at}"


def save_snapshot(clients: AwsClients, stack: DeployedStack, state_dir: Path) -> SnapshotInfo:
    """Write the tables and the bucket to `state_dir/snapshot/` (replacing the previous snapshot atomically)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    final = state_dir / SNAPSHOT_FOLDER
    partial = state_dir / f".{SNAPSHOT_FOLDER}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "tables").mkdir(parents=True)
    (partial / "objects").mkdir()
    info = SnapshotInfo(path=final, saved_at=datetime.now(UTC).isoformat(timespec="seconds"))
    tables: dict[str, Any] = {}
    for logical, table in (stack.tables | stack.aggregate_tables).items():
        count = 0
        with (partial / "tables" / f"{logical}.jsonl").open("wb") as out:
            for item in raw_items(clients.dynamodb, table):
                out.write(orjson.dumps(item) + b"\n")
                count += 1
        tables[logical] = {"table": table, "items": count, "file": f"tables/{logical}.jsonl"}
        info.items[logical] = count
    objects: list[dict[str, Any]] = []
    for entry in list_object_entries(clients.s3, stack.bucket):
        name = hashlib.sha256(entry.key.encode()).hexdigest()
        download_file(clients.s3, stack.bucket, entry.key, str(partial / "objects" / name))
        objects.append({"key": entry.key, "file": f"objects/{name}", "size": entry.size})
        info.objects += 1
        info.object_bytes += entry.size
    manifest = {
        "version": SNAPSHOT_VERSION,
        "saved_at": info.saved_at,
        "bucket": stack.bucket,
        "tables": tables,
        "objects": objects,
        "not_kept": ["stream records", "queue messages", "resources outside the stack"],
    }
    (partial / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    previous = state_dir / f".{SNAPSHOT_FOLDER}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    partial.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
    return info


def load_snapshot(clients: AwsClients, stack: DeployedStack, state_dir: Path) -> SnapshotInfo | None:
    """Write a saved snapshot back into the (freshly deployed) stack; None when there is none."""
    folder = state_dir / SNAPSHOT_FOLDER
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise SnapshotError(f"{manifest_path}: not a tripstream snapshot ({error})") from error
    if manifest.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"{manifest_path}: snapshot version {manifest.get('version')!r} is not supported")
    info = SnapshotInfo(path=folder, saved_at=str(manifest.get("saved_at")))
    # Every path is checked before anything is written: a crafted manifest must not upload files from elsewhere.
    objects = [(_inside(folder, "objects", entry), entry) for entry in manifest.get("objects", [])]
    table_files = {logical: _inside(folder, "tables", entry) for logical, entry in manifest.get("tables", {}).items()}
    for path, entry in objects:
        upload_file(clients.s3, str(path), stack.bucket, entry["key"])
        info.objects += 1
        info.object_bytes += int(entry.get("size", 0))
    settings = Settings()
    for logical, entry in manifest.get("tables", {}).items():
        table = (stack.tables | stack.aggregate_tables).get(logical, entry.get("table", logical))
        with table_files[logical].open("rb") as lines:
            requests = [(table, orjson.loads(line)) for line in lines if line.strip()]
        unwritten = write_items(clients.dynamodb, requests, new_backoff(settings), WriteStats(), settings.max_in_flight)
        if unwritten:
            raise SnapshotError(f"{len(unwritten)} items of {logical} could not be written back")
        info.items[logical] = len(requests)
    return info


def _inside(folder: Path, subfolder: str, entry: Any) -> Path:
    """The file a manifest entry names, refused unless it is a regular file in `folder/subfolder` (no `..`,
    no absolute path, no symlink out)."""
    name = entry.get("file") if isinstance(entry, dict) else None
    key = entry.get("key", "") if isinstance(entry, dict) else None
    root = (folder / subfolder).resolve()
    path = (folder / name).resolve() if isinstance(name, str) else None
    if path is None or not isinstance(key, str) or not path.is_relative_to(root) or not path.is_file():
        raise SnapshotError(f"{folder / MANIFEST}: {str(entry)[:200]} does not name a file in {root}")
    return path
