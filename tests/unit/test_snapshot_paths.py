"""A crafted `up --state-dir` snapshot manifest cannot make `up` upload files outside the snapshot (issue 15)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import orjson
import pytest

from tripstream.local.commands.snapshot import MANIFEST, SNAPSHOT_FOLDER, SNAPSHOT_VERSION, SnapshotError, load_snapshot


def restore(
    state_dir: Path, objects: list[Any], tables: dict[str, Any] | None = None, s3: MagicMock | None = None
) -> MagicMock:
    folder = state_dir / SNAPSHOT_FOLDER
    (folder / "objects").mkdir(parents=True, exist_ok=True)
    (folder / "objects" / "good").write_bytes(b"trips")
    manifest = {"version": SNAPSHOT_VERSION, "objects": objects, "tables": tables or {}}
    (folder / MANIFEST).write_bytes(orjson.dumps(manifest))
    clients = SimpleNamespace(s3=s3 or MagicMock(), dynamodb=MagicMock())
    stack = SimpleNamespace(bucket="b", tables={})
    load_snapshot(clients, stack, state_dir)  # type: ignore[arg-type]
    return clients.s3


@pytest.mark.parametrize(
    "entry",
    [
        {"key": "x", "file": "../../../../etc/passwd"},
        {"key": "x", "file": "/etc/passwd"},
        {"key": "x", "file": "objects/../snapshot.json"},
        {"key": "x", "file": "objects/link"},
        {"key": "x"},
        "objects/good",
    ],
    ids=["dot_dot", "absolute", "out_of_objects", "symlink_out", "no_file", "not_an_entry"],
)
def test_a_path_outside_the_snapshot_is_refused_before_anything_is_uploaded(tmp_path: Path, entry: Any) -> None:
    (tmp_path / SNAPSHOT_FOLDER / "objects").mkdir(parents=True)
    (tmp_path / SNAPSHOT_FOLDER / "objects" / "link").symlink_to("/etc/hostname")
    s3 = MagicMock()
    with pytest.raises(SnapshotError, match="does not name a file in"):
        restore(tmp_path, [{"key": "ok", "file": "objects/good"}, entry], s3=s3)
    s3.upload_file.assert_not_called()  # not even the good one before it
    s3.put_object.assert_not_called()


def test_a_table_file_outside_the_snapshot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError):
        restore(tmp_path, [], {"trips": {"table": "t", "file": "../../etc/passwd"}})


def test_the_snapshots_own_files_are_uploaded(tmp_path: Path) -> None:
    s3 = restore(tmp_path, [{"key": "taxi_trips.csv", "file": "objects/good", "size": 5}])
    ((path, bucket, key), _) = s3.upload_file.call_args
    assert Path(path) == (tmp_path / SNAPSHOT_FOLDER / "objects" / "good").resolve() and (bucket, key) == (
        "b",
        "taxi_trips.csv",
    )


@pytest.mark.parametrize("version", [0, 3, "2", None])
def test_a_snapshot_of_another_version_is_refused_with_its_version(tmp_path: Path, version: Any) -> None:
    folder = tmp_path / SNAPSHOT_FOLDER
    folder.mkdir()
    (folder / MANIFEST).write_bytes(orjson.dumps({"version": version, "objects": []}))
    clients = SimpleNamespace(s3=MagicMock(), dynamodb=MagicMock())
    with pytest.raises(SnapshotError, match=rf"snapshot version {version!r} is not supported .*reads versions 1, 2"):
        load_snapshot(clients, SimpleNamespace(bucket="b", tables={}), tmp_path)  # type: ignore[arg-type]
