"""S3 calls: stream an object (as a `ByteSource`), and write rejects as JSON lines."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import orjson
from botocore.exceptions import ClientError

from tripstream.aws.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType

_RANGE_BUFFER = 8 << 20


class ObjectGone(RuntimeError):
    """The object of an S3 event is no longer there as the event described it: nothing to do for this event."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason


@dataclass
class S3ObjectSource:
    """An S3 object read by ranged GETs, pinned to one version (ETag) so a re-upload mid-read is noticed."""

    s3: S3Client
    bucket: str
    key: str
    etag: str | None = None
    _size: int | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _head(self) -> None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.key, **self._match())
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {"PreconditionFailed", "412"}:
                raise ObjectGone(
                    self.name, "replaced since the event (its own notification brings the new version)"
                ) from None
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectGone(self.name, "deleted since the event") from None
            raise
        self._size = head["ContentLength"]
        self.etag = self.etag or head["ETag"]

    def _match(self) -> dict[str, Any]:
        return {"IfMatch": self.etag} if self.etag else {}

    def size(self) -> int:
        if self._size is None:
            self._head()
        assert self._size is not None
        return self._size

    def read_range(self, start: int, length: int) -> bytes:
        if length <= 0 or start >= self.size():
            return b""
        end = min(start + length, self.size()) - 1
        body = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end}", **self._match())
        return body["Body"].read()

    def open_stream(self, start: int = 0) -> IO[bytes]:
        if start and start >= self.size():
            # A continuation that resumes exactly at the end (every row done at a deadline check): nothing is left,
            # and S3 refuses a range past the last byte (InvalidRange, 416).
            return io.BufferedReader(io.BytesIO(b""))
        extra: dict[str, Any] = self._match()
        if start:
            extra["Range"] = f"bytes={start}-"
        body = self.s3.get_object(Bucket=self.bucket, Key=self.key, **extra)["Body"]
        return io.BufferedReader(_StreamingBodyIO(body), buffer_size=1 << 20)

    def open_seekable(self) -> IO[bytes]:
        return io.BufferedReader(_RangeReader(self), buffer_size=_RANGE_BUFFER)


class _StreamingBodyIO(io.RawIOBase):
    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class _RangeReader(io.RawIOBase):
    """Random access over ranged GETs (Parquet reads its footer first, then one row group at a time)."""

    def __init__(self, source: S3ObjectSource) -> None:
        self._source = source
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        else:
            self._position = self._source.size() + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        data = self._source.read_range(self._position, len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def put_json_lines(s3: S3Client, bucket: str, key: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as one JSON-lines object; returns the number of rows written."""
    lines = [orjson.dumps(row) for row in rows]
    if lines:
        s3.put_object(Bucket=bucket, Key=key, Body=b"\n".join(lines) + b"\n", ContentType="application/x-ndjson")
    return len(lines)


def read_json_lines(s3: S3Client, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every JSON line under a prefix (for summaries and tests)."""
    rows: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            rows.extend(orjson.loads(line) for line in body.splitlines() if line.strip())
    return rows


def upload_file(s3: S3Client, path: str, bucket: str, key: str) -> None:
    s3.upload_file(path, bucket, key)


def put_file(s3: S3Client, path: Path, bucket: str, key: str) -> None:
    """A local file as one PutObject (its ETag the content's MD5, whatever its size up to 5 GB)."""
    with path.open("rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def download_file(s3: S3Client, bucket: str, key: str, path: str) -> None:
    s3.download_file(bucket, key, path)


def upload_artifact(s3: S3Client, *, bucket: str, key: str, body: bytes, region: str) -> None:
    """Put ``body`` at ``s3://bucket/key``, creating the bucket first if it does not exist.

    The artifact bucket must exist before the stack (the functions' code is read while the stack
    is created), so it is not the stack's own bucket. An object already at ``key`` is kept as it
    is: keys are content-addressed (:func:`artifact_key`).
    """
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) not in {"404", "NoSuchKey", "NoSuchBucket"}:
            raise
    else:
        return
    _ensure_bucket(s3, bucket=bucket, region=region)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/zip")


def _ensure_bucket(s3: S3Client, *, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error_code(error) not in {"404", "NoSuchBucket"}:
            raise
    else:
        return
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": cast("BucketLocationConstraintType", region)},
            )
    except ClientError as error:
        if error_code(error) != "BucketAlreadyOwnedByYou":
            raise


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in {"404", "NoSuchKey", "NoSuchBucket", "403"}:
            return False
        raise
    return True


def upload_file_and_head(s3: S3Client, path: Path, bucket: str, key: str) -> tuple[int, str]:
    """Upload a local file (multipart when large); returns the object's size and ETag as S3 now holds them."""
    s3.upload_file(str(path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    return head["ContentLength"], head["ETag"]


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    etag: str  # unquoted
    size: int


def list_object_entries(s3: S3Client, bucket: str, prefix: str = "") -> list[ObjectEntry]:
    """Every object of a bucket (key, unquoted ETag, size)."""
    entries: list[ObjectEntry] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            entries.append(ObjectEntry(entry["Key"], entry.get("ETag", "").strip('"'), entry.get("Size", 0)))
    return entries


def put_queue_notifications(s3: S3Client, bucket: str, configurations: list[dict[str, Any]]) -> None:
    """Replace the bucket's notification configuration with these QueueConfigurations."""
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": cast("Any", configurations)},
    )


def put_json(s3: S3Client, bucket: str, key: str, document: Mapping[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=orjson.dumps(document), ContentType="application/json")


def get_json(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """A JSON object's content, or None when there is no such object."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error_code(error) in {"404", "NoSuchKey"}:
            return None
        raise
    document = orjson.loads(body)
    return document if isinstance(document, dict) else None
