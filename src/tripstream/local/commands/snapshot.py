"""What `tripstream up --state-dir` keeps across restarts of the embedded emulator, and how (snapshot version 2).

- The tables (the per-trip tables, zone_hourly_stats and its markers) and the stream's records: in the emulator's
  own store, a SQLite file in `STATE_DIR/emulator/` (`moto_patches.storage`, kept): every committed write is on disk
  when it is answered, so nothing is saved again when an object arrives or `up` stops, and a `kill -9` of `up` loses
  no item and no record. The next emulator deploys the same stack and re-attaches to them by name: the records not
  yet consumed are consumed from the shard checkpoints (`STATE_DIR/checkpoints/`, named by the stream's first
  creation time, which the store keeps).
- The bucket (uploaded trip files, the rejects, the live runtime's results): moto holds it in memory, so tripstream
  copies it here, `STATE_DIR/snapshot/`: a manifest (`snapshot.json`: key, ETag, file) and one file per object
  version. A save is incremental: only objects whose (key, ETag) the manifest lacks are downloaded; the manifest is
  replaced atomically, then files it no longer names are removed (a crash at any point leaves a readable snapshot).
  On start, the objects are written back (PutObject for a single-part object: the same ETag again, so the live
  runtime's ledger still knows it).

With DynamoDB Local (`--backend dynamodb-local`) the tables are its own, in `STATE_DIR/dynamodb-local/`.
Not kept: the SQS queues' messages and anything created outside the stack (the stack itself is deployed again).
A version 1 snapshot (tables saved as DynamoDB JSON beside the objects, every table rewritten at each save) is still
read: its tables are written back once, and the next save writes version 2.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from tripstream.aws.clients import AwsClients
from tripstream.aws.dynamodb import WriteStats, write_items
from tripstream.aws.s3 import download_file, list_object_entries, put_file, upload_file
from tripstream.infra.stack import DeployedStack
from tripstream.pipeline.producer import new_backoff
from tripstream.settings import Settings

SNAPSHOT_VERSION: Final = 2
_READABLE_VERSIONS: Final = (1, SNAPSHOT_VERSION)
SNAPSHOT_FOLDER: Final = "snapshot"
MANIFEST: Final = "snapshot.json"
#: Where the embedded emulator keeps the tables and the stream (its store) under the state folder.
EMULATOR_FOLDER: Final = "emulator"


class SnapshotError(RuntimeError):
    """A snapshot that cannot be restored (its folder is named in the message)."""


@dataclass
class SnapshotInfo:
    path: Path
    saved_at: str
    items: dict[str, int] = field(default_factory=dict)  # a version 1 snapshot's tables, written back
    objects: int = 0
    object_bytes: int = 0
    downloaded: int = 0  # objects this save copied (the others were in the snapshot already)
    downloaded_bytes: int = 0

    def describe(self) -> str:
        items = "".join(f"{table} {count:,}, " for table, count in self.items.items())
        objects = f"{items}{self.objects:,} objects ({self.object_bytes:,} bytes) in the bucket"
        if self.downloaded:
            objects += f" ({self.downloaded:,} new: {self.downloaded_bytes:,} bytes)"
        # The tables and the stream: in the emulator's store there (or DynamoDB Local's folder), as written.
        return f"{objects}, saved {self.saved_at}; tables and stream kept in {self.path.parent}"


def emulator_state_dir(state_dir: Path) -> Path:
    """Where `up --state-dir` keeps the embedded emulator's store (its tables and stream)."""
    return state_dir / EMULATOR_FOLDER


def save_snapshot(clients: AwsClients, stack: DeployedStack, state_dir: Path) -> SnapshotInfo:
    """Copy the bucket's new or changed objects to `state_dir/snapshot/` and replace its manifest atomically.

    The work is the bucket's listing plus the new objects: it does not grow with the tables or the stream."""
    folder = state_dir / SNAPSHOT_FOLDER
    (folder / "objects").mkdir(parents=True, exist_ok=True)
    try:
        saved = _manifest(folder).get("objects", [])
    except SnapshotError:  # unreadable now (it was read at start): everything is copied again
        saved = []
    kept = {entry["key"]: entry for entry in saved if isinstance(entry, dict)}
    info = SnapshotInfo(path=folder, saved_at=datetime.now(UTC).isoformat(timespec="seconds"))
    objects: list[dict[str, Any]] = []
    for entry in list_object_entries(clients.s3, stack.bucket):
        name = hashlib.sha256(f"{entry.key}\n{entry.etag}".encode()).hexdigest()
        path = folder / "objects" / name
        previous = kept.get(entry.key)
        if previous is None or previous.get("etag") != entry.etag or not path.is_file():
            partial = path.with_name(name + ".partial")
            download_file(clients.s3, stack.bucket, entry.key, str(partial))
            os.replace(partial, path)
            info.downloaded += 1
            info.downloaded_bytes += entry.size
        objects.append({"key": entry.key, "etag": entry.etag, "file": f"objects/{name}", "size": entry.size})
        info.objects += 1
        info.object_bytes += entry.size
    manifest = {
        "version": SNAPSHOT_VERSION,
        "saved_at": info.saved_at,
        "bucket": stack.bucket,
        "objects": objects,
        "tables_and_stream": f"../{EMULATOR_FOLDER}",
        "not_kept": ["queue messages", "resources outside the stack"],
    }
    partial_manifest = folder / f".{MANIFEST}.partial"
    partial_manifest.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    os.replace(partial_manifest, folder / MANIFEST)
    # Only now may what the manifest no longer names go (a version 1 snapshot's tables and object files too).
    named = {entry["file"].removeprefix("objects/") for entry in objects}
    for path in (folder / "objects").iterdir():
        if path.name not in named:
            path.unlink(missing_ok=True)
    shutil.rmtree(folder / "tables", ignore_errors=True)
    return info


def load_snapshot(clients: AwsClients, stack: DeployedStack, state_dir: Path) -> SnapshotInfo | None:
    """Write a saved snapshot's objects back into the (freshly deployed) stack's bucket, and a version 1 snapshot's
    tables into its tables; None when there is none."""
    folder = state_dir / SNAPSHOT_FOLDER
    manifest = _manifest(folder)
    if not manifest:
        return None
    info = SnapshotInfo(path=folder, saved_at=str(manifest.get("saved_at")))
    # Every path is checked before anything is written: a crafted manifest must not upload files from elsewhere.
    objects = [(_inside(folder, "objects", entry), entry) for entry in manifest.get("objects", [])]
    table_files = {logical: _inside(folder, "tables", entry) for logical, entry in manifest.get("tables", {}).items()}
    for path, entry in objects:
        if "-" in str(entry.get("etag", "-")):
            upload_file(clients.s3, str(path), stack.bucket, entry["key"])  # multipart (as it most likely came)
        else:
            put_file(clients.s3, path, stack.bucket, entry["key"])  # one part: the same ETag as before
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


def _manifest(folder: Path) -> dict[str, Any]:
    """The snapshot's manifest ({} when there is none), refused when unreadable or of a version not read here."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise SnapshotError(f"{path}: not a tripstream snapshot ({error})") from error
    version = manifest.get("version") if isinstance(manifest, dict) else None
    if version not in _READABLE_VERSIONS:
        raise SnapshotError(
            f"{path}: snapshot version {version!r} is not supported (this tripstream reads versions "
            f"{', '.join(map(str, _READABLE_VERSIONS))}; a newer one wrote it?)"
        )
    return dict(manifest)


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
